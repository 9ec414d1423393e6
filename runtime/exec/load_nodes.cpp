// load_model and load_data: models from Hugging Face directories or created afresh, prompts from JSONL.

#include <nlohmann/json.hpp>
#include <ostream>

#include "runtime/data/data_checks.h"
#include "runtime/data/jsonl.h"
#include "runtime/exec/run_context.h"
#include "runtime/model/checkpoint.h"
#include "runtime/model/config.h"

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

const char* ArchitectureName(ir::Architecture architecture) {
  switch (architecture) {
    case ir::Architecture::Llama:
      return "LlamaForCausalLM";
    case ir::Architecture::Qwen2:
      return "Qwen2ForCausalLM";
    case ir::Architecture::Mistral:
      return "MistralForCausalLM";
  }
  return "LlamaForCausalLM";
}

/// The tokenizer files of a new model into `dir`: the byte tokenizer, or those beside the path named.
void WriteTokenizerFiles(const std::string& tokenizer, const RunContext& run, const fs::path& dir) {
  fs::create_directories(dir);
  if (tokenizer == "byte") {
    auto [tokenizer_json, tokenizer_config] = ByteTokenizerFiles();
    WriteOrThrow(dir / "tokenizer.json", tokenizer_json);
    WriteOrThrow(dir / "tokenizer_config.json", tokenizer_config);
    return;
  }
  fs::path from = run.Resolve(tokenizer);
  if (!fs::is_directory(from)) from = from.parent_path();
  for (const char* file : kTokenizerFiles) {
    if (fs::exists(from / file)) fs::copy_file(from / file, dir / file);
  }
}

/// A new model: a config from the spec, the byte tokenizer (or the one named), seeded weights; cached.
NodeValue CreateModel(const ir::Node& node, const ir::NewModelSpec& spec, RunContext& run) {
  if (auto cached = run.CachedEntry(node)) return NodeValue{ModelHandle{*cached + "/model", spec.chat}};
  std::string staging = run.cache().BeginEntry(node.hash);
  const fs::path tokenizer_dir = fs::path(staging) / "tokenizer";
  WriteTokenizerFiles(spec.tokenizer, run, tokenizer_dir);
  std::string error;
  auto tokenizer = Tokenizer::Load(tokenizer_dir.string(), &error);
  if (!tokenizer) throw RunError(RunErrorKind::ModelDirectory, error).Place(spec.tokenizer);
  Json config = {{"architectures", {ArchitectureName(spec.architecture)}},
                 {"hidden_size", spec.hidden_size},
                 {"intermediate_size", spec.intermediate_size},
                 {"num_hidden_layers", spec.num_layers},
                 {"num_attention_heads", spec.num_heads},
                 {"num_key_value_heads", spec.num_kv_heads.value_or(spec.num_heads)},
                 {"vocab_size", spec.vocab_size.value_or(static_cast<int64_t>(tokenizer->vocab_size()))},
                 {"max_position_embeddings", spec.max_position},
                 {"rope_theta", spec.rope_theta},
                 {"rms_norm_eps", spec.rms_norm_eps},
                 {"tie_word_embeddings", spec.tie_embeddings},
                 {"torch_dtype", "float32"}};
  if (auto bos = tokenizer->bos_id()) config["bos_token_id"] = *bos;
  if (auto eos = tokenizer->eos_id()) config["eos_token_id"] = *eos;
  auto parsed = ParseModelConfig(config.dump(), &error);
  if (!parsed) throw RunError(RunErrorKind::Internal, "the new model's config " + error);
  if (tokenizer->vocab_size() > parsed->vocab_size) {
    throw RunError(RunErrorKind::ModelDirectory, "vocab_size " + std::to_string(parsed->vocab_size) +
                                                     " is smaller than the tokenizer's " +
                                                     std::to_string(tokenizer->vocab_size()) + " tokens")
        .Help("leave `vocab_size` out to take the tokenizer's");
  }
  LlamaForCausalLM model(*parsed);
  InitializeWeights(*model, static_cast<uint64_t>(spec.seed));
  SaveOptions save;
  save.tokenizer_dir = tokenizer_dir.string();
  // `chat` (plain by default) is recorded, not the tokenizer's own Jinja: hf_model() on this directory, and
  // every model trained from it, renders as it was made to.
  save.chat_template = ResolveChat(spec.chat, *tokenizer, spec.tokenizer.empty() ? "the byte tokenizer" : spec.tokenizer).kind;
  if (!SaveModel(*model, staging + "/model", save, &error)) throw RunError(RunErrorKind::FileSystem, error);
  fs::remove_all(tokenizer_dir);
  std::string entry = run.Commit(node, staging);
  run.reporter().progress() << "  created a new model: " << parsed->architecture << ", " << parsed->num_layers
                            << " layers, hidden " << parsed->hidden_size << "\n";
  return NodeValue{ModelHandle{entry + "/model", spec.chat}};
}

/// The reader's error at a bad line: what is wrong, with the data file's `path:line` as the place.
RunError DataLineError(const JsonlReader& reader) {
  const std::string place = reader.path() + (reader.error_line() > 0 ? ":" + std::to_string(reader.error_line()) : "");
  return RunError(RunErrorKind::DataLine, reader.error_detail()).Place(place);
}

}  // namespace

NodeValue RunLoadModel(const ir::Node& node, RunContext& run) {
  const ir::ModelSpec& spec = node.as<ir::LoadModel>().model;
  if (const auto* created = std::get_if<ir::NewModelSpec>(&spec)) return CreateModel(node, *created, run);
  const auto& hf = std::get<ir::HfModelSpec>(spec);
  std::string dir = run.Resolve(hf.path);
  std::string error;
  if (!ReadModelConfig(dir, &error)) {
    throw RunError(RunErrorKind::ModelDirectory, error)
        .Place(dir)
        .Help("`hf_model` paths are relative to the .fuse file; the directory needs config.json, weights and "
              "tokenizer files");
  }
  return NodeValue{ModelHandle{dir, hf.chat}};
}

NodeValue RunLoadData(const ir::Node& node, RunContext& run) {
  const ir::DatasetSpec& spec = node.as<ir::LoadData>().data;
  std::string path = run.Resolve(spec.path);
  JsonlOptions options;
  const ir::JsonlFields& f = spec.fields;
  options.fields = {f.id, f.prompt, f.messages, f.responses, f.source, f.text, f.reward, f.gold, f.family};
  options.bad_lines = spec.bad_lines == ir::BadLines::Skip ? BadLines::Skip : BadLines::Stop;
  options.require_responses = false;  // evaluation prompts may have none; rules see empty response lists
  options.limit = spec.limit;
  std::string error;
  auto reader = JsonlReader::Open(path, options, &error);
  if (!reader) throw RunError(RunErrorKind::DataFile, error).Place(path);
  auto data = std::make_shared<Dataset>();
  PromptRecord record;
  while (reader->Next(&record)) data->push_back(std::move(record));
  if (!reader->error().empty()) throw DataLineError(*reader);
  std::ostream& progress = run.reporter().progress();
  for (const std::string& message : reader->skipped_messages()) progress << "  skipped " << message << "\n";
  progress << "  read " << path << ": " << data->size() << " prompts"
           << (reader->skipped() > 0 ? ", " + std::to_string(reader->skipped()) + " bad lines skipped" : "") << "\n";
  DataCheckReport checked = CheckRecords(*data, options.fields, reader->skipped());
  if (checked.error) {
    RunError failure(RunErrorKind::DataFile, checked.error->message);
    failure.Place(path);
    if (!checked.error->help.empty()) failure.Help(checked.error->help);
    throw failure;
  }
  for (const DataProblem& warning : checked.warnings) {
    progress << "warning: " << path << ": " << warning.message << "\n";
    if (!warning.help.empty()) progress << "help: " << warning.help << "\n";
  }
  return NodeValue{std::nullopt, data};
}

}  // namespace fusec::rt
