#include "runtime/cli/commands.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <memory>
#include <sstream>
#include <thread>

#include "compiler/diag/command_line.h"
#include "runtime/data/examples.h"
#include "runtime/data/synth.h"
#ifdef FUSEC_HAVE_EXECUTOR
#include "runtime/cli/run_experiments.h"
#endif
#include "runtime/dist/rank_group.h"
#include "runtime/model/checkpoint.h"
#include "runtime/model/inference.h"
#include "runtime/support/interrupt.h"
#include "runtime/support/launch_environment.h"
#include "runtime/support/local_ranks.h"
#include "runtime/support/run_error.h"
#include "runtime/support/text.h"
#include "runtime/support/torch_errors.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/tokenizer.h"

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSkipHint = "(--skip-bad-lines skips such lines)";

/// A floating-point flag's range. CLI::Range lets NaN through (every comparison with it is false), so
/// `--top-p nan` sampled from NaN probabilities; this refuses NaN and the infinities too. A failed check is a
/// usage error that CLI11 prefixes with the flag's name.
CLI::Validator FiniteRange(double min, double max) {
  std::ostringstream range;
  range << "[" << min << ", " << max << "]";
  return CLI::Validator(
      [min, max, range = range.str()](std::string& input) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(input, value) || !std::isfinite(value) || value < min || value > max) {
          return "`" + input + "` is not a number in " + range;
        }
        return "";
      },
      "FLOAT in " + range.str());
}

/// Seeds are unsigned: digits only, so `-1` is refused instead of read as 2^64 - 1.
CLI::Validator NonNegativeInteger() {
  return CLI::Validator(
      [](std::string& input) -> std::string {
        if (input.empty() || input.find_first_not_of("0123456789") != std::string::npos) {
          return "`" + input + "` is not a non-negative integer";
        }
        return "";
      },
      "UINT");
}

/// The largest --max-new-tokens, --batch-tokens and --samples: beyond any model's positions or a day's work,
/// and small enough that sums of them never overflow (a prompt's length plus --max-new-tokens was compared
/// with max_position_embeddings after wrapping around).
constexpr int64_t kMaxNewTokens = int64_t{1} << 24;
constexpr int64_t kMaxBatchTokens = int64_t{1} << 32;
constexpr int64_t kMaxSamples = 100'000;
constexpr int64_t kMaxBatch = 65'536;

/// An error in the input: printed as `error: what` and turned into exit status 1.
struct InputError {
  std::string message;
};

[[noreturn]] void Fail(std::string message) { throw InputError{std::move(message)}; }

/// A double as users write it: 0.02, 1e+300.
std::string NumberText(double value) {
  std::ostringstream text;
  text << value;
  return text.str();
}

std::string DtypeName(torch::Dtype dtype) {
  return dtype == torch::kBFloat16 ? "bf16" : dtype == torch::kHalf ? "fp16" : "fp32";
}

torch::Device ResolveDevice(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda" && !torch::cuda::is_available()) {
    Fail("--device cuda: no CUDA device is available (this LibTorch " +
         std::string(torch::cuda::is_available() ? "has" : "has no usable") + " CUDA)");
  }
  if (name == "cuda" || (name == "auto" && torch::cuda::is_available())) return torch::kCUDA;
  return torch::kCPU;
}

Tokenizer LoadTokenizer(const std::string& path) {
  std::string error;
  auto tokenizer = Tokenizer::Load(path, &error);
  if (!tokenizer) Fail(error);
  return std::move(*tokenizer);
}

/// `--template NAME` for the tokenizer loaded from `where`; an `auto` choice worth a word (no
/// tokenizer_config.json, an unusable `chat_template`) is a warning on `err` naming `where` and the choice.
ChatTemplate ResolveTemplate(const std::string& name, const Tokenizer& tokenizer, const std::string& where,
                             std::ostream& err) {
  std::string error;
  std::string warning;
  auto chat = ResolveChatTemplate(name, tokenizer, where, &error, &warning);
  if (!chat) Fail(name == "auto" ? error : "--template " + name + ": " + error);
  if (!warning.empty()) err << "warning: " << where << ": " << warning << " (--template names another)\n";
  return std::move(*chat);
}

struct LoadedModel {
  LlamaForCausalLM model{nullptr};
  Tokenizer tokenizer;
  ChatTemplate chat;
};

/// The options every command that runs a model shares.
struct ModelOptions {
  std::string model_dir;
  std::string tokenizer;  // defaults to the model directory
  std::string chat = "auto";
  std::string device = "auto";
  std::string dtype = "auto";

  void Add(CLI::App& command) {
    command.add_option("--model", model_dir, "The model directory (config.json, safetensors, tokenizer files)")
        ->required();
    command.add_option("--tokenizer", tokenizer, "Tokenizer directory or tokenizer.json (default: the model's)");
    command.add_option("--template", chat, "Chat template: auto (the tokenizer's), plain, llama3, chatml, gemma")
        ->capture_default_str();
    command.add_option("--device", device, "auto, cpu or cuda")
        ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
        ->capture_default_str();
    command.add_option("--dtype", dtype, "auto (config's on CUDA, fp32 on CPU), fp32, bf16, fp16")
        ->check(CLI::IsMember({"auto", "fp32", "bf16", "fp16"}))
        ->capture_default_str();
  }

  LoadedModel Load(std::ostream& err) const {
    torch::Device device = ResolveDevice(this->device);
    std::string error;
    auto config = ReadModelConfig(model_dir, &error);
    if (!config) Fail(error);
    auto resolved_dtype = ResolveDtype(dtype, *config, device, &error);
    if (!resolved_dtype) Fail(error);
    Tokenizer loaded_tokenizer = LoadTokenizer(tokenizer.empty() ? model_dir : tokenizer);
    if (loaded_tokenizer.vocab_size() > config->vocab_size) {
      Fail("the tokenizer has " + std::to_string(loaded_tokenizer.vocab_size()) + " tokens but the model's vocab_size is " +
           std::to_string(config->vocab_size));
    }
    auto start = std::chrono::steady_clock::now();
    auto model = LoadModel(model_dir, *resolved_dtype, device, &error);
    if (!model) Fail(error);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ChatTemplate chat_template = ResolveTemplate(chat, loaded_tokenizer, tokenizer.empty() ? model_dir : tokenizer, err);
    err << "loaded " << model_dir << " (" << config->architecture << ", " << config->num_layers << " layers, "
        << config->hidden_size << " hidden, " << DtypeName(*resolved_dtype) << " on " << device.str() << ") in "
        << std::fixed << std::setprecision(1) << seconds << " s; template " << ChatTemplateName(chat_template.kind) << "\n";
    return LoadedModel{*model, std::move(loaded_tokenizer), chat_template};
  }
};

/// `--field key=name` options: the data file's key names, as `jsonl(...)` maps them in an experiment.
void ApplyFieldMappings(const std::vector<std::string>& mappings, JsonlFields& fields) {
  for (const std::string& mapping : mappings) {
    size_t equals = mapping.find('=');
    std::string key = mapping.substr(0, equals);
    std::string name = equals == std::string::npos ? "" : mapping.substr(equals + 1);
    std::string* slot = key == "id"          ? &fields.id
                        : key == "prompt"    ? &fields.prompt
                        : key == "messages"  ? &fields.messages
                        : key == "responses" ? &fields.responses
                        : key == "source"    ? &fields.source
                        : key == "text"      ? &fields.text
                        : key == "reward"    ? &fields.reward
                                             : nullptr;
    if (slot == nullptr || name.empty()) {
      Fail("--field " + mapping + ": expected KEY=NAME with KEY one of id, prompt, messages, responses, source, text, reward");
    }
    *slot = name;
  }
}

int RunInitModel(const std::string& config_path, uint64_t seed, const std::string& out_dir,
                 const std::string& tokenizer_path, const std::string& chat, const std::string& dtype, bool force,
                 std::ostream& out, std::ostream& err) {
  auto text = ReadWholeFile(config_path);
  if (!text) Fail(config_path + ": cannot read");
  std::string error;
  auto config = ParseModelConfig(*text, &error);
  if (!config) Fail(config_path + ": " + error);
  if (fs::exists(out_dir) && !force) Fail(out_dir + ": already exists (pass --force to replace it)");

  // The tokenizer: copied from --tokenizer, or fusec's byte-level one written next to the weights.
  fs::path staging_tokenizer;
  std::string tokenizer_dir = tokenizer_path;
  if (tokenizer_path.empty()) {
    staging_tokenizer = fs::path(out_dir).string() + ".tokenizer";
    std::error_code ec;
    fs::create_directories(staging_tokenizer, ec);
    auto [tokenizer_json, tokenizer_config] = ByteTokenizerFiles();
    if (ec || !WriteWholeFile((staging_tokenizer / "tokenizer.json").string(), tokenizer_json) ||
        !WriteWholeFile((staging_tokenizer / "tokenizer_config.json").string(), tokenizer_config)) {
      Fail(staging_tokenizer.string() + ": cannot write the tokenizer files");
    }
    tokenizer_dir = staging_tokenizer.string();
  } else if (!fs::is_directory(tokenizer_dir)) {
    tokenizer_dir = fs::path(tokenizer_path).parent_path().string();
  }
  Tokenizer tokenizer = LoadTokenizer(tokenizer_dir);
  // Recorded in the model's tokenizer_config.json, so `score`, `generate` and hf_model() default to it.
  const ChatTemplateKind chat_kind =
      ResolveTemplate(chat, tokenizer, tokenizer_path.empty() ? "the byte tokenizer" : tokenizer_path, err).kind;
  if (tokenizer.vocab_size() > config->vocab_size) {
    Fail(config_path + ": vocab_size " + std::to_string(config->vocab_size) + " is smaller than the tokenizer's " +
         std::to_string(tokenizer.vocab_size()) + " tokens");
  }
  if (!config->bos_token_id) {
    if (auto bos = tokenizer.bos_id()) config->bos_token_id = *bos;
  }
  if (config->eos_token_ids.empty()) {
    if (auto eos = tokenizer.eos_id()) config->eos_token_ids.push_back(*eos);
  }
  SaveOptions save;
  save.dtype = dtype == "bf16" ? torch::kBFloat16 : dtype == "fp16" ? torch::kHalf : torch::kFloat;
  if (dtype == "auto") {
    save.dtype = config->torch_dtype == "bfloat16" ? torch::kBFloat16
                 : config->torch_dtype == "float16" ? torch::kHalf
                                                    : torch::kFloat;
  }
  save.tokenizer_dir = tokenizer_dir;
  save.chat_template = chat_kind;
  LlamaForCausalLM model{nullptr};
  try {
    model = LlamaForCausalLM(*config);
  } catch (RunError& too_large) {  // the config asks for more memory than there is
    if (!staging_tokenizer.empty()) fs::remove_all(staging_tokenizer);
    throw too_large.Place(config_path);
  }
  InitializeWeights(*model, seed);
  // A wide initializer overflows the dtype written (fp16 ends at 65504): refuse rather than write Inf.
  for (const auto& item : model->named_parameters()) {
    if (!item.value().to(save.dtype).isfinite().all().item<bool>()) {
      if (!staging_tokenizer.empty()) fs::remove_all(staging_tokenizer);
      Fail(config_path + ": `initializer_range` " + NumberText(config->initializer_range) +
           " gives non-finite weights in " + DtypeName(save.dtype) + " (tensor `" + item.key() +
           "`)\nhelp: use a smaller `initializer_range` (Hugging Face's default is 0.02) or a wider --dtype");
    }
  }
  bool saved = SaveModel(*model, out_dir, save, &error);
  if (!staging_tokenizer.empty()) fs::remove_all(staging_tokenizer);
  if (!saved) Fail(error);
  int64_t parameters = 0;
  for (const auto& parameter : model->parameters()) parameters += parameter.numel();
  out << "wrote " << out_dir << ": " << config->architecture << ", " << parameters << " parameters, seed " << seed
      << ", template " << ChatTemplateName(chat_kind) << "\n";
  return kExitOk;
}

int RunScore(const ModelOptions& model_options, const std::string& data, const std::vector<std::string>& fields,
             bool skip_bad_lines, int64_t batch_tokens, std::ostream& out, std::ostream& err) {
  LoadedModel loaded = model_options.Load(err);
  TokenizeOptions options;
  options.chat = loaded.chat;
  options.jsonl.bad_lines = skip_bad_lines ? BadLines::Skip : BadLines::Stop;
  options.jsonl.skip_hint = kSkipHint;
  ApplyFieldMappings(fields, options.jsonl.fields);
  options.max_len = loaded.model->config().max_position;
  std::string error;
  auto reader = JsonlReader::Open(data, options.jsonl, &error);
  if (!reader) Fail(error);

  // Streams: a chunk of prompts is tokenized, scored and printed before the next is read, so a large file
  // is never held whole and results appear as they are ready.
  constexpr size_t kPromptsPerChunk = 256;
  std::vector<TokenizedPrompt> chunk;
  TokenizeStats stats;
  int64_t scored = 0;
  auto start = std::chrono::steady_clock::now();
  auto score_chunk = [&]() {
    auto scores = ScoreResponses(*loaded.model, chunk, batch_tokens);
    for (size_t p = 0; p < chunk.size(); ++p) {
      for (size_t r = 0; r < chunk[p].responses.size(); ++r) {
        nlohmann::ordered_json line = {{"id", chunk[p].id},
                                       {"source", chunk[p].responses[r].source},
                                       {"index", chunk[p].responses[r].index},
                                       {"logp", scores[p][r].logp},
                                       {"tokens", scores[p][r].tokens}};
        out << line.dump() << "\n";
        ++scored;
      }
    }
    out << std::flush;
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    err << "scored " << scored << " responses (" << std::fixed << std::setprecision(1) << seconds << " s)\n";
    chunk.clear();
  };
  PromptRecord record;
  while (reader->Next(&record)) {
    if (!TokenizeRecord(record, loaded.tokenizer, options, &chunk, &stats, &error)) {
      std::string message = data + ":" + std::to_string(record.line) + ": " + error;
      if (!skip_bad_lines) Fail(message);
      ++stats.bad_lines;
      continue;
    }
    if (chunk.size() >= kPromptsPerChunk) score_chunk();
  }
  if (!reader->error().empty()) Fail(reader->error());
  if (!chunk.empty()) score_chunk();
  stats.bad_lines += reader->skipped();
  for (const std::string& message : reader->skipped_messages()) err << "skipped " << message << "\n";
  err << data << ": " << stats.Summary() << "\n";
  return kExitOk;
}

struct GenerateOptions {
  std::string prompts;
  std::vector<std::string> fields;
  bool skip_bad_lines = false;
  SamplingOptions sampling;
  int64_t batch = 8;
  int64_t samples = 1;
  std::vector<std::string> stop;
};

int RunGenerate(const ModelOptions& model_options, GenerateOptions options, std::ostream& out, std::ostream& err) {
  LoadedModel loaded = model_options.Load(err);
  // Stop at the template's end of turn, the tokenizer's EOS and the config's EOS ids, and any --stop token.
  std::vector<std::string> stop_tokens = options.stop;
  stop_tokens.push_back(loaded.chat.EndOfTurn());
  stop_tokens.push_back(loaded.tokenizer.eos_token());
  for (const std::string& token : stop_tokens) {
    if (token.empty()) continue;
    auto id = loaded.tokenizer.TokenId(token);
    if (!id) {
      if (std::find(options.stop.begin(), options.stop.end(), token) != options.stop.end()) {
        Fail("--stop " + token + ": not a token of the tokenizer");
      }
      continue;
    }
    options.sampling.stop_ids.push_back(*id);
  }
  for (int64_t id : loaded.model->config().eos_token_ids) options.sampling.stop_ids.push_back(static_cast<int32_t>(id));

  JsonlOptions jsonl;
  jsonl.require_responses = false;
  jsonl.bad_lines = options.skip_bad_lines ? BadLines::Skip : BadLines::Stop;
  jsonl.skip_hint = kSkipHint;
  ApplyFieldMappings(options.fields, jsonl.fields);
  std::string error;
  auto reader = JsonlReader::Open(options.prompts, jsonl, &error);
  if (!reader) Fail(error);

  struct Pending {
    std::string id;
    int64_t sample;
    std::vector<int32_t> ids;
  };
  std::vector<Pending> pending;
  int64_t generated = 0;
  int64_t generated_tokens = 0;
  auto start = std::chrono::steady_clock::now();
  auto flush = [&]() {
    if (pending.empty()) return;
    std::vector<std::vector<int32_t>> prompts;
    for (const Pending& p : pending) prompts.push_back(p.ids);
    SamplingOptions sampling = options.sampling;
    sampling.seed = options.sampling.seed + static_cast<uint64_t>(generated);
    std::vector<Generation> results = Generate(*loaded.model, prompts, sampling);
    for (size_t i = 0; i < results.size(); ++i) {
      std::vector<int32_t> text_ids = results[i].ids;
      if (results[i].stopped) text_ids.pop_back();
      generated_tokens += static_cast<int64_t>(results[i].ids.size());
      nlohmann::ordered_json line = {{"id", pending[i].id},
                                     {"sample", pending[i].sample},
                                     {"text", loaded.tokenizer.Decode(text_ids, /*skip_special_tokens=*/true)},
                                     {"tokens", results[i].ids.size()},
                                     {"finish_reason", results[i].stopped ? "stop" : "length"}};
      out << line.dump() << "\n" << std::flush;
    }
    generated += static_cast<int64_t>(results.size());
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    err << "generated " << generated << " completions, " << generated_tokens << " tokens (" << std::fixed
        << std::setprecision(1) << generated_tokens / std::max(seconds, 1e-9) << " tokens/s)\n";
    pending.clear();
  };
  PromptRecord record;
  while (reader->Next(&record)) {
    auto ids = TokenizePrompt(record, loaded.tokenizer, loaded.chat, &error);
    if (!ids) Fail(options.prompts + ":" + std::to_string(record.line) + ": " + error);
    if (static_cast<int64_t>(ids->size()) + options.sampling.max_new_tokens > loaded.model->config().max_position) {
      Fail(options.prompts + ":" + std::to_string(record.line) + ": the prompt's " + std::to_string(ids->size()) +
           " tokens and --max-new-tokens " + std::to_string(options.sampling.max_new_tokens) +
           " exceed the model's max_position_embeddings " + std::to_string(loaded.model->config().max_position));
    }
    for (int64_t sample = 0; sample < options.samples; ++sample) {
      pending.push_back({record.id, sample, *ids});
      if (static_cast<int64_t>(pending.size()) == options.batch) flush();
    }
  }
  if (!reader->error().empty()) Fail(reader->error());
  flush();
  for (const std::string& message : reader->skipped_messages()) err << "skipped " << message << "\n";
  if (reader->skipped() > 0) err << "skipped " << reader->skipped() << " bad lines in all\n";
  return kExitOk;
}

int RunTokenize(const std::string& tokenizer_path, const std::string& chat, bool no_special, std::istream& in,
                std::ostream& out, std::ostream& err) {
  Tokenizer tokenizer = LoadTokenizer(tokenizer_path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  std::string input = buffer.str();
  std::vector<int32_t> ids;
  if (chat.empty()) {
    ids = tokenizer.Encode(input, !no_special);
  } else {
    ChatTemplate chat_template = ResolveTemplate(chat, tokenizer, tokenizer_path, err);
    nlohmann::json messages = nlohmann::json::parse(input, nullptr, false);
    if (messages.is_discarded() || !messages.is_array()) Fail("stdin: with --template, expected a JSON list of messages");
    std::vector<ChatMessage> conversation;
    for (size_t i = 0; i < messages.size(); ++i) {
      const auto& message = messages[i];
      if (!message.is_object() || !message.contains("role") || !message["role"].is_string() ||
          !message.contains("content") || !message["content"].is_string()) {
        Fail("stdin: message " + std::to_string(i + 1) + " is not {\"role\": ..., \"content\": ...} with strings");
      }
      conversation.push_back({message["role"].get<std::string>(), message["content"].get<std::string>()});
    }
    // A conversation ending with the assistant renders that turn as the response; else it ends at the
    // generation header.
    std::optional<std::string> response;
    if (!conversation.empty() && conversation.back().role == "assistant") {
      response = conversation.back().content;
      conversation.pop_back();
    }
    std::string error;
    auto rendered = chat_template.Render(conversation, response, &error);
    if (!rendered) Fail("stdin: " + error);
    ids = tokenizer.Encode(rendered->prompt + rendered->response, /*add_special_tokens=*/false);
  }
  for (size_t i = 0; i < ids.size(); ++i) out << (i ? " " : "") << ids[i];
  out << "\n";
  return kExitOk;
}


/// The ranks this process is one of (started by torchrun, srun or `--nproc`), connected; nullptr for one
/// process.
std::unique_ptr<RankGroup> JoinLaunch(double timeout_s) {
  std::string error;
  auto launch = ReadLaunchEnvironment([](const char* name) { return std::getenv(name); }, &error);
  if (!launch) {
    throw RunError(RunErrorKind::Launch, "the launcher's environment is inconsistent: " + error)
        .Help("start `fusec run` as one process, or fix the launcher's variables");
  }
  if (launch->world_size == 1) return nullptr;
  try {
    return RankGroup::Connect(*launch, std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  } catch (const DistributedError& connect_error) {
    throw RunError(RunErrorKind::Distributed, std::string(connect_error.what()) + " (" + launch->Describe() + ")")
        .Help("start every rank, with the same MASTER_ADDR and MASTER_PORT, reachable from each of them");
  }
}

/// `fusec run --nproc N`: this command again as N local ranks, each with its share of the cores.
int RunAsLocalRanks(int64_t nproc, const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::string error;
  auto launch = ReadLaunchEnvironment([](const char* name) { return std::getenv(name); }, &error);
  if (launch && launch->world_size > 1) {
    throw RunError(RunErrorKind::Launch, "--nproc " + std::to_string(nproc) + " inside a launch: this process is " +
                                             launch->Describe())
        .Help("let the launcher start the ranks (drop --nproc), or run `fusec run --nproc N` by itself");
  }
  LocalRanksOptions ranks;
  ranks.nproc = static_cast<int>(nproc);
  ranks.argv.push_back(std::filesystem::read_symlink("/proc/self/exe").string());
  for (size_t k = 0; k < args.size(); ++k) {
    if (args[k] == "--nproc") {
      ++k;  // and its value
    } else if (args[k].rfind("--nproc=", 0) != 0) {
      ranks.argv.push_back(args[k]);
    }
  }
  const auto threads = std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()) / nproc);
  setenv("OMP_NUM_THREADS", std::to_string(threads).c_str(), 1);
  return RunLocalRanks(ranks, out, err);
}

}  // namespace

int RuntimeMain(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& err) {
  CLI::App app{"fusec's runtime commands (LibTorch): make, score and sample models, tokenize text.", "fusec"};
  app.require_subcommand(1);

  std::string config_path;
  std::string out_dir;
  std::string init_tokenizer;
  std::string init_dtype = "auto";
  std::string init_template = "auto";
  uint64_t seed = 0;
  bool force = false;
  CLI::App* init = app.add_subcommand("init-model", "Write a randomly initialised model directory");
  init->add_option("--config", config_path, "A Hugging Face config.json")->required()->check(CLI::ExistingFile);
  init->add_option("--seed", seed, "Random seed of the initialisation")->check(NonNegativeInteger())->capture_default_str();
  init->add_option("--out", out_dir, "The model directory to write")->required();
  init->add_option("--tokenizer", init_tokenizer, "Tokenizer files to copy along (default: fusec's byte tokenizer)");
  init->add_option("--dtype", init_dtype, "Weights dtype: auto (the config's torch_dtype), fp32, bf16, fp16")
      ->check(CLI::IsMember({"auto", "fp32", "bf16", "fp16"}))
      ->capture_default_str();
  init->add_option("--template", init_template,
                   "Chat template recorded in the model: auto (the tokenizer's), plain, llama3, chatml, gemma")
      ->check(CLI::IsMember({"auto", "plain", "llama3", "chatml", "gemma"}))
      ->capture_default_str();
  init->add_flag("--force", force, "Replace --out if it exists");

  ModelOptions score_model;
  std::string score_data;
  std::vector<std::string> score_fields;
  bool score_skip = false;
  int64_t batch_tokens = 4096;
  CLI::App* score = app.add_subcommand("score", "Print the log-probability of each response given its prompt");
  score_model.Add(*score);
  score->add_option("--data", score_data, "JSONL: {id, prompt | messages, responses: [{source, text}]}")
      ->required()
      ->check(CLI::ExistingFile);
  score->add_option("--field", score_fields, "Key names of the data, e.g. --field text=completion");
  score->add_flag("--skip-bad-lines", score_skip, "Skip and count malformed lines instead of stopping");
  score->add_option("--batch-tokens", batch_tokens, "Tokens a batch computes (packed, each prompt once)")
      ->check(CLI::Range(int64_t{1}, kMaxBatchTokens))
      ->capture_default_str();

  ModelOptions generate_model;
  GenerateOptions generate_options;
  CLI::App* generate = app.add_subcommand("generate", "Print a completion for each prompt as JSONL");
  generate_model.Add(*generate);
  generate->add_option("--prompts", generate_options.prompts, "JSONL: {id, prompt | messages}")
      ->required()
      ->check(CLI::ExistingFile);
  generate->add_option("--field", generate_options.fields, "Key names of the data, e.g. --field prompt=question");
  generate->add_flag("--skip-bad-lines", generate_options.skip_bad_lines, "Skip malformed lines instead of stopping");
  generate->add_option("--max-new-tokens", generate_options.sampling.max_new_tokens)
      ->check(CLI::Range(int64_t{1}, kMaxNewTokens))
      ->capture_default_str();
  generate->add_option("--temperature", generate_options.sampling.temperature, "0 for greedy decoding")
      ->check(FiniteRange(0.0, 100.0))
      ->capture_default_str();
  generate->add_option("--top-p", generate_options.sampling.top_p, "Nucleus sampling mass")
      ->check(FiniteRange(0.0, 1.0))
      ->capture_default_str();
  generate->add_option("--seed", generate_options.sampling.seed)->check(NonNegativeInteger())->capture_default_str();
  generate->add_option("--batch", generate_options.batch, "Prompts generated together")
      ->check(CLI::Range(int64_t{1}, kMaxBatch))
      ->capture_default_str();
  generate->add_option("--samples", generate_options.samples, "Completions per prompt")
      ->check(CLI::Range(int64_t{1}, kMaxSamples))
      ->capture_default_str();
  generate->add_option("--stop", generate_options.stop, "More stop tokens (the template's end of turn and EOS stop)");

  SynthOptions synth_options;
  std::string synth_out;
  CLI::App* synth = app.add_subcommand("synth", "Generate a synthetic benchmark");
  CLI::App* fusion_mini = synth->add_subcommand(
      "fusion-mini", "Six checkable task families, four sources with complementary skills, noisy rewards");
  synth->require_subcommand(1);
  fusion_mini->add_option("--out", synth_out, "The directory to write")->required();
  fusion_mini->add_option("--seed", synth_options.seed)->check(NonNegativeInteger())->capture_default_str();
  fusion_mini->add_option("--prompts", synth_options.prompts, "Prompts in all (40% SFT, 40% PO, 20% evaluation)")
      ->check(CLI::Range(int64_t{5}, int64_t{10'000'000}))
      ->capture_default_str();
  fusion_mini->add_option("--noise", synth_options.noise, "Standard deviation of the reward noise")
      ->check(FiniteRange(0.0, 10.0))
      ->capture_default_str();
  fusion_mini->add_option("--samples", synth_options.samples, "Samples per source per prompt")
      ->check(CLI::Range(int64_t{1}, int64_t{100}))
      ->capture_default_str();
  fusion_mini->add_option("--source-examples", synth_options.source_examples,
                          "Training examples of each real source model (sources/<name>.jsonl)")
      ->check(CLI::Range(int64_t{1}, int64_t{10'000'000}))
      ->capture_default_str();

  std::string tokenizer_path;
  std::string tokenize_template;
  bool no_special = false;
  CLI::App* tokenize = app.add_subcommand(
      "tokenize", "Print the token ids of stdin (text, or with --template a JSON list of messages)");
  tokenize->add_option("--tokenizer", tokenizer_path, "Tokenizer directory or tokenizer.json")->required();
  tokenize->add_option("--template", tokenize_template, "Render stdin's messages with this chat template first");
  tokenize->add_flag("--no-special", no_special, "Do not add the post-processor's tokens (BOS) to plain text");

#ifdef FUSEC_HAVE_EXECUTOR
  RunOptions run_options;
  int64_t stop_after = 0;
  CLI::App* run = app.add_subcommand("run", "Run an experiment: train its stages, export and evaluate");
  run->add_option("file", run_options.file, "The .fuse file")->required()->check(CLI::ExistingFile);
  run->add_option("--set", run_options.overrides, "Override a field: --set po.optim.lr=1e-6 (repeatable)");
  run->add_option("--out", run_options.out, "The run directory (default: the experiment's `output`)");
  CLI::Option* resume = run->add_flag(
      "--resume", run_options.resume, "Continue interrupted stages from their last checkpoints (the default)");
  run->add_flag("--restart", run_options.restart, "Discard interrupted stages' checkpoints and start them over")
      ->excludes(resume);
  run->add_option("--checkpoint-minutes", run_options.checkpoint_minutes,
                  "Also checkpoint a training stage this often, in minutes (0: only `save_every` and the end)")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  run->add_option("--device", run_options.device, "auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  run->add_flag("--deterministic", run_options.deterministic, "Bit-identical reruns (same machine and threads)");
  run->add_option("--score-batch-tokens", run_options.score_batch_tokens,
                  "Tokens a batch of reference log-probabilities or evaluation NLL holds (memory; results to "
                  "rounding; several ranks split the batches)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40))
      ->capture_default_str();
  run->add_flag("--unoptimized", run_options.unoptimized,
                "Padded rows, repeated prompts, whole logits (the usual way; same results, slower)");
  run->add_option("--stdlib", run_options.stdlib, "The stdlib directory (default: found next to fusec)")
      ->check(CLI::ExistingDirectory);
  run->add_option("--config", run_options.config, "A fusec.toml file (default: ./fusec.toml if it exists)")
      ->check(CLI::ExistingFile);
  run->add_option("--cache", run_options.cache,
                  "The stage cache directory (default: $FUSEC_CACHE, else fusec.toml's [cache] dir, else "
                  "$XDG_CACHE_HOME/fusec or ~/.cache/fusec)");
  int64_t nproc = 1;
  double dist_timeout_s = 300;
  run->add_option("--nproc", nproc, "Train on N local processes (data parallel over Gloo or NCCL), without torchrun")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}))
      ->capture_default_str();
  run->add_option("--dist-timeout", dist_timeout_s,
                  "Seconds a rank waits in a collective (or to connect) before it stops naming the others")
      ->check(CLI::Range(1.0, 86400.0))
      ->capture_default_str();
  run->add_option("--stop-after", stop_after, "Stop each stage after N steps, as if killed (for testing --resume)")
      ->check(CLI::PositiveNumber)
      ->group("");
#endif

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
    if (!tokenize_template.empty() && no_special) throw CLI::ValidationError("--no-special applies to plain text only");
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {
      app.exit(error, out, err);
      return kExitOk;
    }
    std::string message = UnknownCommandOrOption(app, args).value_or(error.what());
    if (!message.empty()) message[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(message[0])));
    err << "error: " << message << " [Usage]\nhelp: run `fusec <command> --help` for its options\n";
    return kExitUsage;
  }
  try {
    if (init->parsed()) return RunInitModel(config_path, seed, out_dir, init_tokenizer, init_template, init_dtype, force, out, err);
    if (score->parsed()) return RunScore(score_model, score_data, score_fields, score_skip, batch_tokens, out, err);
    if (generate->parsed()) return RunGenerate(generate_model, generate_options, out, err);
    if (tokenize->parsed()) return RunTokenize(tokenizer_path, tokenize_template, no_special, in, out, err);
    if (fusion_mini->parsed()) {
      std::string error;
      if (!WriteFusionMini(synth_options, synth_out, &error)) Fail(error);
      out << "wrote " << synth_out << ": " << synth_options.prompts << " prompts (sft.jsonl, po.jsonl, po_target.jsonl, eval.jsonl; for the real sources sft_prompts.jsonl, po_prompts.jsonl and sources/*.jsonl with " << synth_options.source_examples << " examples each)\n";
      return kExitOk;
    }
#ifdef FUSEC_HAVE_EXECUTOR
    if (run->parsed()) {
      if (nproc > 1) return RunAsLocalRanks(nproc, args, out, err);
      if (stop_after > 0) run_options.stop_after_steps = stop_after;
      InstallInterruptHandlers();
      const std::unique_ptr<RankGroup> ranks = JoinLaunch(dist_timeout_s);
      run_options.ranks = ranks.get();
      return RunExperiments(run_options, out, err);
    }
#endif
  } catch (const InputError& error) {
    err << "error: " << error.message << "\n";
    return kExitErrors;
  } catch (const RunError& error) {  // the sources are gone by now: the plain form
    err << Render(error);
    return ExitStatusOf(error);
  } catch (const c10::Error& error) {
    if (auto out_of_memory = OutOfMemoryMessage(error)) {
      err << "error: " << *out_of_memory << " (a smaller model, batch or length needs less)\n";
      return kExitErrors;
    }
    // A LibTorch check that our own validation should have caught first: report it, do not crash.
    err << "error: internal: " << error.what_without_backtrace() << "\n";
    return kExitErrors;
  }
  return kExitUsage;
}

}  // namespace fusec::rt
