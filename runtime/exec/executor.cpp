#include "runtime/exec/executor.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "compiler/cache/cache.h"
#include "runtime/data/examples.h"
#include "runtime/exec/rules.h"
#include "runtime/model/checkpoint.h"
#include "runtime/model/inference.h"
#include "runtime/support/text.h"
#include "runtime/support/torch_errors.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/train/trainer.h"

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

/// Tokens a scoring batch computes (reference log-probs, evaluation's best-response NLL).
constexpr int64_t kScoreBatchTokens = 8192;

/// How log-probabilities are computed: every optimisation on, unless `fusec run --unoptimized`.
LogProbOptions LogProbOptionsOf(const RunOptions& options) {
  return options.unoptimized ? LogProbOptions::Naive() : LogProbOptions{};
}

/// A stage or node that cannot run; the message is complete (it names the node and what is wrong).
class RunError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A model as nodes pass it on: a Hugging Face model directory and the chat template to use with it.
struct ModelHandle {
  std::string dir;
  ir::ChatTemplateName chat;
};

/// The output of a node.
struct Value {
  std::optional<ModelHandle> model;
  std::shared_ptr<const Dataset> data;  // datasets, and the dataset items index
  std::shared_ptr<const ItemSet> items;
  std::shared_ptr<const std::vector<std::vector<double>>> ref_logp;  // [item][role]; NaN for dropped items
};

/// Scores of greedy completions against gold answers, over some prompts.
struct GoldTally {
  int64_t prompts = 0;
  double score_sum = 0;  // EditSimilarity(completion, gold)
  int64_t exact = 0;     // completions equal to the gold answer (surrounding whitespace ignored)

  void Add(double score, bool is_exact) {
    ++prompts;
    score_sum += score;
    exact += is_exact ? 1 : 0;
  }
  double score() const { return prompts > 0 ? score_sum / static_cast<double>(prompts) : 0; }
  double exact_match() const { return prompts > 0 ? static_cast<double>(exact) / static_cast<double>(prompts) : 0; }
};

/// One evaluated model, for the summary.
struct EvalResult {
  std::string model;
  int64_t prompts = 0;
  std::optional<double>
      best_response_nll;  // mean per-token NLL of each prompt's best response, when there are responses
  double mean_generated_tokens = 0;
  GoldTally gold;                             // over the prompts with a gold answer
  std::map<std::string, GoldTally> families;  // the same, per task family (prompts with a `family`)

  Json ToJson() const {
    Json json = {{"model", model},
                 {"prompts", prompts},
                 {"best_response_nll", best_response_nll ? Json(*best_response_nll) : Json(nullptr)},
                 {"mean_generated_tokens", mean_generated_tokens}};
    if (gold.prompts > 0) {
      json["gold_prompts"] = gold.prompts;
      json["score"] = gold.score();
      json["exact_match"] = gold.exact_match();
      Json per_family = Json::object();
      for (const auto& [family, tally] : families) {
        per_family[family] = {
            {"prompts", tally.prompts}, {"score", tally.score()}, {"exact_match", tally.exact_match()}};
      }
      json["families"] = per_family;
    }
    return json;
  }
  /// Reads what ToJson wrote (a cached evaluation); sums are rebuilt from the means.
  static EvalResult FromJson(const Json& json) {
    EvalResult r;
    r.model = json.at("model").get<std::string>();
    r.prompts = json.at("prompts").get<int64_t>();
    if (!json.at("best_response_nll").is_null()) r.best_response_nll = json.at("best_response_nll").get<double>();
    r.mean_generated_tokens = json.at("mean_generated_tokens").get<double>();
    auto tally = [](const Json& j, int64_t prompts) {
      GoldTally t;
      t.prompts = prompts;
      t.score_sum = j.at("score").get<double>() * static_cast<double>(prompts);
      t.exact = std::llround(j.at("exact_match").get<double>() * static_cast<double>(prompts));
      return t;
    };
    if (json.contains("gold_prompts")) {
      r.gold = tally(json, json.at("gold_prompts").get<int64_t>());
      for (const auto& [family, j] : json.at("families").items())
        r.families[family] = tally(j, j.at("prompts").get<int64_t>());
    }
    return r;
  }
};

ChatTemplate ResolveChat(ir::ChatTemplateName name, const Tokenizer& tokenizer, const std::string& where) {
  std::string error;
  std::optional<ChatTemplateKind> kind;
  switch (name) {
    case ir::ChatTemplateName::Auto:
      kind = DetectChatTemplate(tokenizer, &error);
      break;
    case ir::ChatTemplateName::Llama3:
      kind = ChatTemplateKind::Llama3;
      break;
    case ir::ChatTemplateName::Chatml:
      kind = ChatTemplateKind::ChatMl;
      break;
    case ir::ChatTemplateName::Gemma:
      kind = ChatTemplateKind::Gemma;
      break;
    case ir::ChatTemplateName::Plain:
      kind = ChatTemplateKind::Plain;
      break;
  }
  if (!kind) throw RunError(where + ": " + error);
  return MakeChatTemplate(*kind, tokenizer);
}

/// Tokenized training items: the items whose sequences fit the length limits, with their original indexes.
struct TokenizedItems {
  TrainData data;
  std::vector<size_t> kept;
  int64_t too_long = 0;
};

TokenizedItems TokenizeItems(const Dataset& dataset, const ItemSet& items, const Tokenizer& tokenizer,
                             const ChatTemplate& chat, int64_t max_len, std::optional<int64_t> max_prompt_len) {
  TokenizedItems out;
  TrainData& data = out.data;
  data.prompt_ids.resize(dataset.size());
  data.response_ids.resize(dataset.size());
  data.rewards.resize(dataset.size());
  std::vector<bool> prompt_done(dataset.size(), false);
  data.items.roles = items.roles;
  data.items.groups = items.groups;
  for (size_t i = 0; i < items.items.size(); ++i) {
    const Item& item = items.items[i];
    const PromptRecord& record = dataset[item.prompt];
    auto fail = [&](const std::string& what) {
      throw RunError("prompt `" + record.id + "` (line " + std::to_string(record.line) + "): " + what);
    };
    std::string error;
    if (!prompt_done[item.prompt]) {
      auto ids = TokenizePrompt(record, tokenizer, chat, &error);
      if (!ids) fail(error);
      data.prompt_ids[item.prompt] = std::move(*ids);
      data.response_ids[item.prompt].resize(record.responses.size());
      for (const ResponseRecord& response : record.responses) {
        data.rewards[item.prompt].push_back(response.reward.value_or(std::nan("")));
      }
      prompt_done[item.prompt] = true;
    }
    const size_t prompt_length = data.prompt_ids[item.prompt].size();
    bool fits = !max_prompt_len || static_cast<int64_t>(prompt_length) <= *max_prompt_len;
    for (int32_t r : item.responses) {
      std::vector<int32_t>& ids = data.response_ids[item.prompt][static_cast<size_t>(r)];
      if (ids.empty()) {
        auto tokenized = TokenizeResponse(record, record.responses[static_cast<size_t>(r)].text, tokenizer, chat, &error);
        if (!tokenized) fail(error);
        ids = std::move(*tokenized);
      }
      fits = fits && static_cast<int64_t>(prompt_length + ids.size()) <= max_len;
    }
    if (!fits) {
      ++out.too_long;
      continue;
    }
    out.kept.push_back(i);
    data.items.items.push_back(item);
  }
  return out;
}

std::string FormatDuration(double seconds) {
  auto total = static_cast<int64_t>(seconds + 0.5);
  std::ostringstream out;
  if (total >= 3600) out << total / 3600 << "h";
  out << std::setfill('0') << (total >= 3600 ? std::setw(2) : std::setw(1)) << (total % 3600) / 60 << ":" << std::setw(2)
      << total % 60;
  return out.str();
}

void CopyDirectory(const fs::path& from, const fs::path& to) {
  fs::path staging = to;
  staging += ".partial";
  fs::remove_all(staging);
  fs::create_directories(staging.parent_path());
  fs::copy(from, staging, fs::copy_options::recursive);
  fs::remove_all(to);
  fs::rename(staging, to);
}

class Executor {
 public:
  Executor(const PlannedRun& plan, const RunOptions& options, std::ostream& out, std::ostream& err)
      : plan_(plan), options_(options), out_(out), err_(err), cache_(plan.cache_dir) {
    base_dir_ = fs::absolute(options.file).parent_path();
  }

  int Run() {
    const ir::Graph& graph = plan_.graph;
    if (!options_.out.empty() && graph.experiments.size() != 1) {
      err_ << "error: --out needs a file with one experiment; this one has " << graph.experiments.size()
           << " (each writes to its own output directory)\n";
      return 2;
    }
    try {
      device_ = ResolveDevice();
      for (const ir::ExperimentOutputs& experiment : graph.experiments) {
        fs::path dir = RunDir(experiment);
        fs::create_directories(dir);
        WriteOrFail(dir / "manifest.toml", plan_.manifest_toml);
        WriteOrFail(dir / "metrics.jsonl", "");
        experiment_dirs_[experiment.name] = dir;
        err_ << "run " << experiment.name << " -> " << dir.string() << "\n";
      }
      for (const ir::ExperimentOutputs& experiment : graph.experiments) {
        for (const auto& [stage, id] : experiment.exports) Eval(id.value);
        if (experiment.evaluation) Eval(experiment.evaluation->value);
      }
    } catch (const RunError& error) {
      err_ << "error: " << error.what() << "\n";
      return 1;
    } catch (const c10::Error& error) {
      err_ << "error: " << current_ << ": " << OutOfMemoryMessage(error).value_or(error.what_without_backtrace())
           << "\n";
      return 1;
    } catch (const fs::filesystem_error& error) {
      err_ << "error: " << current_ << ": " << error.what() << "\n";
      return 1;
    }
    PrintSummary();
    return 0;
  }

 private:
  // --- the graph walk ---

  const Value& Eval(uint32_t id) {
    if (auto it = values_.find(id); it != values_.end()) return it->second;
    const ir::Node& node = plan_.graph.nodes.at(id);
    for (const ir::Input& input : node.inputs) {
      if (input.node.value >= id) throw RunError("internal: the graph is not in dependency order at %" + std::to_string(id));
    }
    std::string previous = current_;
    current_ = Label(node) + " (" + std::string(ir::Spelling(node.kind())) + (Where(node).empty() ? "" : " at " + Where(node)) + ")";
    Value value;
    try {
      value = Compute(node);
    } catch (const RuleError& error) {
      throw RunError(current_ + ": " + error.what());
    } catch (const TrainError& error) {
      throw RunError(std::string(error.what()) + " (" + Where(node) + ")");
    }
    current_ = previous;
    return values_[id] = std::move(value);
  }

  Value Compute(const ir::Node& node) {
    switch (node.kind()) {
      case ir::NodeKind::LoadModel:
        return LoadModelNode(node);
      case ir::NodeKind::LoadData:
        return LoadDataNode(node);
      case ir::NodeKind::FilterSources: {
        const Value& data = Eval(node.FindInput("data")->node.value);
        return Value{std::nullopt,
                     std::make_shared<Dataset>(KeepSources(*data.data, node.as<ir::FilterSources>().sources))};
      }
      case ir::NodeKind::Split: {
        const Value& data = Eval(node.FindInput("data")->node.value);
        const ir::Split& split = node.as<ir::Split>();
        return Value{std::nullopt, std::make_shared<Dataset>(SplitPart(*data.data, split.fractions, split.part, split.seed))};
      }
      case ir::NodeKind::Select:
      case ir::NodeKind::Pairs:
      case ir::NodeKind::Groups:
        return RuleNode(node);
      case ir::NodeKind::Weight: {
        const Value& items = Eval(node.FindInput("items")->node.value);
        auto weighted = std::make_shared<ItemSet>(*items.items);
        Weigh(*items.data, node.as<ir::Weight>().weight, *weighted);
        return Value{std::nullopt, items.data, weighted};
      }
      case ir::NodeKind::RefLogprobs:
        return RefLogprobsNode(node);
      case ir::NodeKind::Train:
        return TrainNode(node);
      case ir::NodeKind::Export:
        return ExportNode(node);
      case ir::NodeKind::Evaluate:
        return EvaluateNode(node);
    }
    throw RunError("internal: unknown node kind");
  }

  // --- nodes ---

  Value LoadModelNode(const ir::Node& node) {
    const ir::ModelSpec& spec = node.as<ir::LoadModel>().model;
    if (const auto* hf = std::get_if<ir::HfModelSpec>(&spec)) {
      std::string dir = Resolve(hf->path);
      std::string error;
      if (!ReadModelConfig(dir, &error)) throw RunError(current_ + ": " + error);
      return Value{ModelHandle{dir, hf->chat}};
    }
    const ir::NewModelSpec& p = std::get<ir::NewModelSpec>(spec);
    if (auto cached = CachedEntry(node)) return Value{ModelHandle{*cached + "/model", p.chat}};

    // A new model: a config from the parameters, the byte tokenizer (or the one named), seeded weights.
    const char* architecture = "LlamaForCausalLM";
    switch (p.architecture) {
      case ir::Architecture::Llama:
        architecture = "LlamaForCausalLM";
        break;
      case ir::Architecture::Qwen2:
        architecture = "Qwen2ForCausalLM";
        break;
      case ir::Architecture::Mistral:
        architecture = "MistralForCausalLM";
        break;
    }
    std::string staging = cache_.BeginEntry(node.hash);
    fs::path tokenizer_dir = fs::path(staging) / "tokenizer";
    fs::create_directories(tokenizer_dir);
    const std::string& tokenizer_name = p.tokenizer;
    if (tokenizer_name == "byte") {
      auto [tokenizer_json, tokenizer_config] = ByteTokenizerFiles();
      WriteOrFail(tokenizer_dir / "tokenizer.json", tokenizer_json);
      WriteOrFail(tokenizer_dir / "tokenizer_config.json", tokenizer_config);
    } else {
      fs::path from = Resolve(tokenizer_name);
      if (!fs::is_directory(from)) from = from.parent_path();
      for (const char* file : kTokenizerFiles) {
        if (fs::exists(from / file)) fs::copy_file(from / file, tokenizer_dir / file);
      }
    }
    std::string error;
    auto tokenizer = Tokenizer::Load(tokenizer_dir.string(), &error);
    if (!tokenizer) throw RunError(current_ + ": " + error);
    Json config = {{"architectures", {architecture}},
                   {"hidden_size", p.hidden_size},
                   {"intermediate_size", p.intermediate_size},
                   {"num_hidden_layers", p.num_layers},
                   {"num_attention_heads", p.num_heads},
                   {"num_key_value_heads", p.num_kv_heads.value_or(p.num_heads)},
                   {"vocab_size", p.vocab_size.value_or(static_cast<int64_t>(tokenizer->vocab_size()))},
                   {"max_position_embeddings", p.max_position},
                   {"rope_theta", p.rope_theta},
                   {"rms_norm_eps", p.rms_norm_eps},
                   {"tie_word_embeddings", p.tie_embeddings},
                   {"torch_dtype", "float32"}};
    if (auto bos = tokenizer->bos_id()) config["bos_token_id"] = *bos;
    if (auto eos = tokenizer->eos_id()) config["eos_token_id"] = *eos;
    auto parsed = ParseModelConfig(config.dump(), &error);
    if (!parsed) throw RunError(current_ + ": the model's config " + error);
    if (tokenizer->vocab_size() > parsed->vocab_size) {
      throw RunError(current_ + ": vocab_size " + std::to_string(parsed->vocab_size) + " is smaller than the tokenizer's " +
                     std::to_string(tokenizer->vocab_size()) + " tokens");
    }
    LlamaForCausalLM model(*parsed);
    InitializeWeights(*model, static_cast<uint64_t>(p.seed));
    SaveOptions save;
    save.tokenizer_dir = tokenizer_dir.string();
    if (!SaveModel(*model, staging + "/model", save, &error)) throw RunError(current_ + ": " + error);
    fs::remove_all(tokenizer_dir);
    std::string entry = Commit(node, staging);
    err_ << "  created a new model: " << parsed->architecture << ", " << parsed->num_layers << " layers, hidden "
         << parsed->hidden_size << "\n";
    return Value{ModelHandle{entry + "/model", p.chat}};
  }

  Value LoadDataNode(const ir::Node& node) {
    const ir::DatasetSpec& spec = node.as<ir::LoadData>().data;
    std::string path = Resolve(spec.path);
    JsonlOptions options;
    const ir::JsonlFields& f = spec.fields;
    options.fields = {f.id, f.prompt, f.messages, f.responses, f.source, f.text, f.reward, f.gold, f.family};
    options.bad_lines = spec.bad_lines == ir::BadLines::Skip ? BadLines::Skip : BadLines::Stop;
    options.require_responses = false;  // evaluation prompts may have none; rules see empty response lists
    options.limit = spec.limit;
    std::string error;
    auto reader = JsonlReader::Open(path, options, &error);
    if (!reader) throw RunError(current_ + ": " + error);
    auto data = std::make_shared<Dataset>();
    PromptRecord record;
    while (reader->Next(&record)) data->push_back(std::move(record));
    if (!reader->error().empty()) throw RunError(reader->error());
    for (const std::string& message : reader->skipped_messages()) err_ << "  skipped " << message << "\n";
    err_ << "  read " << path << ": " << data->size() << " prompts"
         << (reader->skipped() > 0 ? ", " + std::to_string(reader->skipped()) + " bad lines skipped" : "") << "\n";
    return Value{std::nullopt, data};
  }

  Value RuleNode(const ir::Node& node) {
    std::shared_ptr<const Dataset> data = Eval(node.FindInput("data")->node.value).data;
    if (const ir::Input* tokenizer = node.FindInput("tokenizer")) {
      data = WithTokenCounts(*data, *Eval(tokenizer->node.value).model);
    }
    ItemSet items;
    if (const auto* select = node.get_if<ir::Select>()) items = Select(*data, select->rule);
    if (const auto* pairs = node.get_if<ir::Pairs>()) items = Pair(*data, pairs->rule);
    if (const auto* groups = node.get_if<ir::Groups>()) items = Group(*data, groups->rule);
    err_ << "  " << Label(node) << ": " << items.items.size() << " " << (items.roles.size() > 1 ? "pairs" : "items")
         << (items.groups > 0 ? " in " + std::to_string(items.groups) + " groups" : "") << " from " << data->size()
         << " prompts\n";
    return Value{std::nullopt, data, std::make_shared<ItemSet>(std::move(items))};
  }

  /// A copy of `data` whose responses carry their token counts under `model`'s tokenizer and chat template
  /// (what a rule's or a weighting's `len` reads; the same count the objective's `len` sees in training).
  std::shared_ptr<const Dataset> WithTokenCounts(const Dataset& data, const ModelHandle& model) {
    std::string error;
    auto tokenizer = Tokenizer::Load(model.dir, &error);
    if (!tokenizer) throw RunError(current_ + ": " + error);
    const ChatTemplate chat = ResolveChat(model.chat, *tokenizer, current_);
    auto counted = std::make_shared<Dataset>(data);
    for (PromptRecord& record : *counted) {
      for (ResponseRecord& response : record.responses) {
        auto ids = TokenizeResponse(record, response.text, *tokenizer, chat, &error);
        if (!ids) {
          throw RunError(current_ + ": prompt `" + record.id + "` (line " + std::to_string(record.line) +
                         "): " + error);
        }
        response.tokens = static_cast<int64_t>(ids->size());
      }
    }
    return counted;
  }

  Value RefLogprobsNode(const ir::Node& node) {
    const Value& items = Eval(node.FindInput("items")->node.value);
    auto values = std::make_shared<std::vector<std::vector<double>>>();
    if (auto cached = CachedEntry(node)) {
      auto text = ReadWholeFile(*cached + "/ref_logp.json");
      Json json = Json::parse(text.value_or(""), nullptr, false);
      if (json.is_discarded() || !json.contains("values")) throw RunError(current_ + ": its cache entry is unreadable");
      for (const Json& row : json["values"]) {
        std::vector<double> parsed;
        for (const Json& v : row) parsed.push_back(v.is_null() ? std::nan("") : v.get<double>());
        values->push_back(std::move(parsed));
      }
      if (values->size() != items.items->items.size()) throw RunError(current_ + ": its cache entry holds other items");
      return Value{std::nullopt, items.data, items.items, values};
    }
    const ModelHandle reference = *Eval(node.FindInput("model")->node.value).model;
    auto start = std::chrono::steady_clock::now();
    OpenedModel opened = Open(reference);
    LlamaForCausalLM& model = opened.model;
    const Tokenizer* tokenizer = &*opened.tokenizer;
    const ChatTemplate& chat = opened.chat;
    const ir::RefLogprobs& spec = node.as<ir::RefLogprobs>();
    TokenizedItems tokenized =
        TokenizeItems(*items.data, *items.items, *tokenizer, chat, spec.max_len, spec.max_prompt_len);
    const std::vector<std::string>& roles = items.items->roles;
    values->assign(items.items->items.size(), std::vector<double>(roles.size(), std::nan("")));
    // The distinct responses of each prompt, scored packed behind one copy of the prompt.
    std::map<uint32_t, size_t> group_of_prompt;
    std::vector<PromptResponses> groups;
    std::vector<std::map<int32_t, size_t>> response_slot;  // [group] response -> its place in the group
    for (size_t k = 0; k < tokenized.kept.size(); ++k) {
      const Item& item = tokenized.data.items.items[k];
      auto [it, added] = group_of_prompt.emplace(item.prompt, groups.size());
      if (added) {
        groups.push_back({tokenized.data.prompt_ids[item.prompt], {}});
        response_slot.emplace_back();
      }
      for (int32_t r : item.responses) {
        auto [slot, fresh] = response_slot[it->second].emplace(r, groups[it->second].responses.size());
        if (fresh) groups[it->second].responses.emplace_back(tokenized.data.response_ids[item.prompt][static_cast<size_t>(r)]);
      }
    }
    auto scores = ScoreResponses(*model, groups, kScoreBatchTokens, LogProbOptionsOf(options_));
    for (size_t k = 0; k < tokenized.kept.size(); ++k) {
      const Item& item = tokenized.data.items.items[k];
      const size_t g = group_of_prompt.at(item.prompt);
      for (size_t role = 0; role < roles.size(); ++role) {
        (*values)[tokenized.kept[k]][role] = scores[g][response_slot[g].at(item.responses[role])].logp;
      }
    }
    std::string staging = cache_.BeginEntry(node.hash);
    Json rows = Json::array();
    for (const auto& row : *values) {
      Json json_row = Json::array();
      for (double v : row) json_row.push_back(std::isnan(v) ? Json(nullptr) : Json(v));
      rows.push_back(json_row);
    }
    WriteOrFail(fs::path(staging) / "ref_logp.json", Json{{"roles", roles}, {"values", rows}}.dump() + "\n");
    Commit(node, staging);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    err_ << "  " << Label(node) << ": reference log-probabilities of " << tokenized.kept.size() << " items in "
         << FormatDuration(seconds) << "\n";
    return Value{std::nullopt, items.data, items.items, values};
  }

  Value TrainNode(const ir::Node& node) {
    const std::string label = Label(node);
    const ModelHandle init = *Eval(node.FindInput("init")->node.value).model;
    if (auto cached = CachedEntry(node)) {
      auto metrics = ReadWholeFile(*cached + "/metrics.jsonl").value_or("");
      AppendMetrics(node, metrics);
      RecordStage(node, "cached", LastLoss(metrics));
      err_ << "[" << label << "] cached (" << cached->substr(cache_.dir().size() + 1) << ")\n";
      return Value{ModelHandle{*cached + "/model", init.chat}};
    }
    const Value& items = Eval(node.FindInput("items")->node.value);
    const Value* ref = nullptr;
    if (const ir::Input* input = node.FindInput("ref_logprobs")) ref = &Eval(input->node.value);
    if (node.FindInput("reference") != nullptr) {
      throw RunError(current_ + ": a reference model must be hoisted into ref_logprobs before training");
    }

    OpenedModel opened = Open(init);
    LlamaForCausalLM& model = opened.model;
    const Tokenizer* tokenizer = &*opened.tokenizer;
    const ChatTemplate& chat = opened.chat;
    std::string error;
    const ir::Train& train_node = node.as<ir::Train>();
    const ir::TrainSpec& spec = train_node.spec;
    TokenizedItems tokenized =
        TokenizeItems(*items.data, *items.items, *tokenizer, chat, spec.max_len, spec.max_prompt_len);
    if (ref != nullptr) {
      for (size_t i : tokenized.kept) {
        const std::vector<double>& row = (*ref->ref_logp)[i];
        for (double v : row) {
          if (std::isnan(v)) throw RunError(current_ + ": an item has no reference log-probability (lengths differ?)");
        }
        tokenized.data.ref_logp.push_back(row);
      }
    }
    // Precision: `auto` is bf16 autocast on a GPU and fp32 on the CPU; weights and AdamW stay fp32.
    if (spec.precision == ir::Precision::Fp16) {  // the checker refuses it; a graph from elsewhere may not
      throw RunError(current_ + ": precision fp16 needs loss scaling, which fusec does not do; use bf16 or fp32");
    }
    bool bf16 = spec.precision == ir::Precision::Bf16 || (spec.precision == ir::Precision::Auto && device_.is_cuda());
    if (bf16 && device_.is_cpu() && !warned_precision_) {
      err_ << "  note: bf16 autocast on the CPU is slow in LibTorch 1.13; `precision = fp32` trains faster here\n";
      warned_precision_ = true;
    }
    TrainSettings settings = TrainSettings::FromSpec(spec);
    settings.bf16_autocast = bf16;
    if (options_.unoptimized) settings.DisableOptimizations();
    fs::path checkpoints = fs::path(cache_.dir()) / "checkpoints" / node.hash;
    if (!options_.resume) fs::remove_all(checkpoints);  // a fresh start: old checkpoints would be resumed by mistake
    bool resuming = options_.resume && fs::exists(checkpoints / "LATEST");

    TrainOptions train;
    train.stage = label;
    train.checkpoint_dir = checkpoints.string();
    train.resume = options_.resume;
    train.stop_after = options_.stop_after_steps;
    // The stage's metrics live beside its checkpoints until it completes, so a resumed stage keeps the lines
    // of the steps before its checkpoint (and drops those it redoes).
    fs::create_directories(checkpoints);
    const fs::path stage_metrics = checkpoints / "metrics.jsonl";
    if (!resuming) fs::remove(stage_metrics);
    StepMetrics last;
    auto start = std::chrono::steady_clock::now();
    int64_t first_step = -1;
    train.on_step = [&](const StepMetrics& m) {
      if (first_step < 0) {
        first_step = m.step;
        std::string earlier;
        std::istringstream lines(ReadWholeFile(stage_metrics.string()).value_or(""));
        for (std::string line; std::getline(lines, line);) {
          Json json = Json::parse(line, nullptr, false);
          if (!json.is_discarded() && json.value("step", int64_t{0}) < m.step) earlier += line + "\n";
        }
        WriteOrFail(stage_metrics, earlier);
        AppendMetrics(node, earlier);
      }
      last = m;
      std::string line = MetricsJson(label, m).dump() + "\n";
      std::ofstream(stage_metrics, std::ios::app) << line;
      AppendMetrics(node, line);
      int64_t every = std::max<int64_t>(1, m.total_steps / 50);
      if (m.step % every == 0 || m.step == m.total_steps || m.step == first_step) {
        double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        double eta = seconds / static_cast<double>(m.step - first_step + 1) * static_cast<double>(m.total_steps - m.step);
        err_ << "[" << label << "] step " << m.step << "/" << m.total_steps << "  loss " << std::fixed
             << std::setprecision(4) << m.loss << std::defaultfloat << "  lr " << std::setprecision(2) << std::scientific
             << m.lr << std::defaultfloat << std::setprecision(6) << "  |g| " << std::fixed << std::setprecision(3) << m.grad_norm
             << std::defaultfloat << std::setprecision(6) << "  " << static_cast<int64_t>(m.tokens_per_s) << " tok/s  ETA "
             << FormatDuration(eta) << "\n";
      }
    };
    err_ << "[" << label << "] training on " << tokenized.data.items.items.size() << " items"
         << (tokenized.too_long > 0 ? " (" + std::to_string(tokenized.too_long) + " over max_len dropped)" : "")
         << (resuming ? ", resuming from its last checkpoint" : "") << " on " << device_.str()
         << (bf16 ? " (bf16 autocast)" : "") << "\n";
    if (tokenized.data.items.items.empty()) throw RunError(current_ + ": no items to train on");
    try {
      Train(*model, tokenized.data, train_node.loss, *train_node.requirements, settings, train);
    } catch (const c10::Error& torch_error) {  // out of memory, a shape LibTorch refuses
      if (auto out_of_memory = OutOfMemoryMessage(torch_error)) {
        throw RunError(current_ + ": " + *out_of_memory + " while training; a smaller `micro_batch` or `max_len`, " +
                       "or `precision = bf16`, needs less (finished stages and checkpoints are kept)");
      }
      throw RunError(current_ + ": " + torch_error.what_without_backtrace());
    }
    if (last.step < last.total_steps) {
      throw RunError(label + ": stopped after step " + std::to_string(last.step) + " of " +
                     std::to_string(last.total_steps) + " (--stop-after); `fusec run --resume` continues");
    }
    std::string staging = cache_.BeginEntry(node.hash);
    SaveOptions save;
    save.tokenizer_dir = init.dir;
    if (!SaveModel(*model, staging + "/model", save, &error)) throw RunError(current_ + ": " + error);
    fs::copy_file(stage_metrics, fs::path(staging) / "metrics.jsonl");
    std::string entry = Commit(node, staging);
    fs::remove_all(checkpoints);
    RecordStage(node, "trained", last.loss);
    return Value{ModelHandle{entry + "/model", init.chat}};
  }

  Value ExportNode(const ir::Node& node) {
    const ModelHandle model = *Eval(node.FindInput("model")->node.value).model;
    fs::path to = Rebase(node.as<ir::Export>().path);
    CopyDirectory(model.dir, to);
    exports_[Label(node)] = to.string();
    return Value{model};
  }

  Value EvaluateNode(const ir::Node& node) {
    const ir::Evaluate& p = node.as<ir::Evaluate>();
    fs::path output = Rebase(p.output);
    std::vector<EvalResult> results;
    if (auto cached = CachedEntry(node)) {
      Json json = Json::parse(ReadWholeFile(*cached + "/results.json").value_or(""), nullptr, false);
      if (json.is_discarded()) throw RunError(current_ + ": its cache entry is unreadable");
      try {
        for (const Json& r : json) results.push_back(EvalResult::FromJson(r));
      } catch (const Json::exception& error) {
        throw RunError(current_ + ": its cache entry is unreadable (" + error.what() + ")");
      }
      CopyEvaluation(*cached, output);
      evaluations_[ExperimentOf(node)] = results;
      return Value{};
    }
    const Value& data = Eval(node.FindInput("data")->node.value);
    std::string staging = cache_.BeginEntry(node.hash);
    std::set<std::string> seen;
    for (const ir::Input& input : node.inputs) {
      if (input.slot != "model") continue;
      const ir::Node& model_node = plan_.graph.at(input.node);
      std::string name = model_node.kind() == ir::NodeKind::Train ? StageName(model_node) : "target";
      if (!seen.insert(name).second) continue;
      const ModelHandle handle = *Eval(input.node.value).model;
      results.push_back(
          EvaluateModel(name, handle, *data.data, p.max_new_tokens, p.batch, fs::path(staging) / (name + ".jsonl")));
    }
    Json json = Json::array();
    for (const EvalResult& r : results) json.push_back(r.ToJson());
    WriteOrFail(fs::path(staging) / "results.json", json.dump(2) + "\n");
    std::string entry = Commit(node, staging);
    CopyEvaluation(entry, output);
    evaluations_[ExperimentOf(node)] = results;
    return Value{};
  }

  /// The evaluation's files into the run directory (without the cache entry's own manifest).
  static void CopyEvaluation(const std::string& entry, const fs::path& output) {
    CopyDirectory(entry, output);
    fs::remove(output / "manifest.toml");
  }

  /// Greedy completions of every prompt, and the mean per-token NLL of each prompt's best response.
  EvalResult EvaluateModel(const std::string& name, const ModelHandle& handle, const Dataset& data,
                           int64_t max_new_tokens, int64_t batch, const fs::path& completions) {
    OpenedModel opened = Open(handle);
    LlamaForCausalLM& model = opened.model;
    const Tokenizer* tokenizer = &*opened.tokenizer;
    const ChatTemplate& chat = opened.chat;
    std::string error;
    SamplingOptions sampling;
    sampling.max_new_tokens = max_new_tokens;
    for (const std::string& token : {chat.EndOfTurn(), tokenizer->eos_token()}) {
      if (auto id = tokenizer->TokenId(token)) sampling.stop_ids.push_back(*id);
    }
    EvalResult result;
    result.model = name;
    std::ofstream out(completions);
    std::vector<TokenizedPrompt> best;
    int64_t generated_tokens = 0;
    for (size_t begin = 0; begin < data.size(); begin += static_cast<size_t>(batch)) {
      size_t end = std::min(data.size(), begin + static_cast<size_t>(batch));
      std::vector<std::vector<int32_t>> prompts;
      for (size_t i = begin; i < end; ++i) {
        auto ids = TokenizePrompt(data[i], *tokenizer, chat, &error);
        if (!ids) throw RunError(current_ + ": prompt `" + data[i].id + "`: " + error);
        prompts.push_back(*ids);
        // The prompt's best response, for the held-out NLL.
        const PromptRecord& record = data[i];
        int32_t top = -1;
        for (size_t r = 0; r < record.responses.size(); ++r) {
          if (top < 0 || record.responses[r].reward.value_or(-1e300) >
                             record.responses[static_cast<size_t>(top)].reward.value_or(-1e300)) {
            top = static_cast<int32_t>(r);
          }
        }
        if (top >= 0) {
          auto response = TokenizeResponse(record, record.responses[static_cast<size_t>(top)].text, *tokenizer, chat, &error);
          if (response) best.push_back({record.id, record.line, *ids, {{record.responses[static_cast<size_t>(top)].source, top, std::nullopt, *response}}});
        }
      }
      std::vector<Generation> generations = Generate(*model, prompts, sampling);
      for (size_t k = 0; k < generations.size(); ++k) {
        const PromptRecord& record = data[begin + k];
        std::vector<int32_t> ids = generations[k].ids;
        if (generations[k].stopped) ids.pop_back();
        generated_tokens += static_cast<int64_t>(generations[k].ids.size());
        std::string text = tokenizer->Decode(ids, true);
        Json line = {{"id", record.id}, {"text", text}, {"tokens", generations[k].ids.size()}};
        if (record.gold) {
          // The true score: the completion against the gold answer, surrounding whitespace ignored.
          std::string answer = TrimPythonSpace(text);
          std::string gold = TrimPythonSpace(*record.gold);
          double score = EditSimilarity(answer, gold);
          bool exact = answer == gold;
          result.gold.Add(score, exact);
          if (record.family) result.families[*record.family].Add(score, exact);
          line["gold"] = *record.gold;
          if (record.family) line["family"] = *record.family;
          line["score"] = score;
          line["exact"] = exact;
        }
        out << line.dump() << "\n";
      }
    }
    result.prompts = static_cast<int64_t>(data.size());
    result.mean_generated_tokens = data.empty() ? 0 : static_cast<double>(generated_tokens) / static_cast<double>(data.size());
    if (!best.empty()) {
      auto scores = ScoreResponses(*model, best, kScoreBatchTokens, nullptr, LogProbOptionsOf(options_));
      double nll = 0;
      int64_t tokens = 0;
      for (const auto& s : scores) {
        nll -= s[0].logp;
        tokens += s[0].tokens;
      }
      if (tokens > 0) result.best_response_nll = nll / static_cast<double>(tokens);
    }
    err_ << "  evaluated " << name << ": " << result.prompts << " prompts" << std::fixed << std::setprecision(4);
    if (result.gold.prompts > 0) {
      err_ << ", score " << result.gold.score() << ", exact match " << std::setprecision(3) << result.gold.exact_match()
           << std::setprecision(4);
    }
    if (result.best_response_nll)
      err_ << ", held-out NLL of the best response " << *result.best_response_nll << " per token";
    err_ << std::defaultfloat << "\n";
    return result;
  }

  /// A model directory loaded for use: the model on the run's device, its tokenizer and chat template,
  /// checked against each other (a tokenizer with more tokens than the embedding has rows would index out of
  /// range in the middle of training).
  struct OpenedModel {
    LlamaForCausalLM model{nullptr};
    std::optional<Tokenizer> tokenizer;
    ChatTemplate chat;
  };
  OpenedModel Open(const ModelHandle& handle) {
    std::string error;
    auto model = LoadModel(handle.dir, torch::kFloat, device_, &error);
    if (!model) throw RunError(current_ + ": " + error);
    auto tokenizer = Tokenizer::Load(handle.dir, &error);
    if (!tokenizer) throw RunError(current_ + ": " + error);
    if (tokenizer->vocab_size() > (*model)->config().vocab_size) {
      throw RunError(current_ + ": the tokenizer of " + handle.dir + " has " + std::to_string(tokenizer->vocab_size()) +
                     " tokens, more than the model's vocab_size " + std::to_string((*model)->config().vocab_size));
    }
    ChatTemplate chat = ResolveChat(handle.chat, *tokenizer, current_);
    return OpenedModel{*model, std::move(tokenizer), chat};
  }

  // --- the cache ---

  std::optional<std::string> CachedEntry(const ir::Node& node) {
    CacheLookup lookup = cache_.Find(node.hash, CacheCheck::Full);
    if (lookup.status == CacheStatus::Complete) return lookup.path;
    if (lookup.status == CacheStatus::Corrupt) {
      err_ << "warning: " << Label(node) << ": its cache entry is corrupt (" << lookup.problem << "); rebuilding it\n";
    }
    return std::nullopt;
  }

  std::string Commit(const ir::Node& node, const std::string& staging) {
    CacheManifest manifest;
    manifest.hash = node.hash;
    manifest.kind = std::string(ir::Spelling(node.kind()));
    manifest.stages = node.stages;
    manifest.source = Where(node);
    manifest.params = ir::ParamsJson(node).dump();
    for (const ir::Input& input : node.inputs) manifest.inputs.emplace_back(input.slot, plan_.graph.at(input.node).hash);
    manifest.fusec_version = plan_.fusec_version;
    manifest.started = started_;
    manifest.finished = UtcNow();
    std::string error;
    auto entry = cache_.CommitEntry(staging, manifest, &error);
    if (!entry) throw RunError(current_ + ": cannot write its cache entry: " + error);
    return *entry;
  }

  // --- run directories, metrics and the summary ---

  fs::path RunDir(const ir::ExperimentOutputs& experiment) const {
    return options_.out.empty() ? fs::path(experiment.output) : fs::path(options_.out);
  }

  /// A path under an experiment's output directory, moved under --out when it is given.
  fs::path Rebase(const std::string& path) const {
    if (options_.out.empty()) return path;
    const std::string& output = plan_.graph.experiments.front().output;
    if (path.rfind(output, 0) == 0) return fs::path(options_.out) / path.substr(std::min(path.size(), output.size() + 1));
    return path;
  }

  std::string Resolve(const std::string& path) const {
    return fs::path(path).is_absolute() ? path : (base_dir_ / path).lexically_normal().string();
  }

  std::string Where(const ir::Node& node) const { return ir::SpanText(plan_.sources, node.span); }
  static std::string Label(const ir::Node& node) {
    return node.stages.empty() ? std::string(ir::Spelling(node.kind())) : node.stages.front();
  }
  static std::string StageName(const ir::Node& node) {
    std::string label = Label(node);
    return label.substr(label.find('/') + 1);
  }
  static std::string ExperimentOf(const ir::Node& node) {
    std::string label = Label(node);
    return label.substr(0, label.find('/'));
  }

  void AppendMetrics(const ir::Node& node, const std::string& lines) {
    if (lines.empty()) return;
    for (const std::string& stage : node.stages) {
      auto it = experiment_dirs_.find(stage.substr(0, stage.find('/')));
      if (it == experiment_dirs_.end()) continue;
      std::ofstream(it->second / "metrics.jsonl", std::ios::app) << lines;
    }
  }

  static Json MetricsJson(const std::string& stage, const StepMetrics& m) {
    Json json = {{"stage", stage},          {"step", m.step},        {"epoch", m.epoch},
                 {"loss", m.loss},          {"lr", m.lr},            {"grad_norm", m.grad_norm},
                 {"tokens", m.tokens},      {"tokens_per_s", m.tokens_per_s}};
    if (m.chosen_reward) {
      json["chosen_reward"] = *m.chosen_reward;
      json["rejected_reward"] = *m.rejected_reward;
      json["margin"] = *m.margin;
      json["accuracy"] = *m.accuracy;
    }
    json["weight_mean"] = m.weight_mean;
    json["weight_min"] = m.weight_min;
    json["weight_max"] = m.weight_max;
    return json;
  }

  static std::optional<double> LastLoss(const std::string& metrics) {
    std::istringstream in(metrics);
    std::optional<double> loss;
    for (std::string line; std::getline(in, line);) {
      Json json = Json::parse(line, nullptr, false);
      if (!json.is_discarded() && json.contains("loss")) loss = json["loss"].get<double>();
    }
    return loss;
  }

  void RecordStage(const ir::Node& node, const std::string& how, std::optional<double> loss) {
    for (const std::string& stage : node.stages) stages_.push_back({stage, how, loss});
  }

  void PrintSummary() {
    Json summary = Json::object();
    for (const ir::ExperimentOutputs& experiment : plan_.graph.experiments) {
      out_ << experiment.name << ": " << experiment_dirs_[experiment.name].string() << "\n";
      Json stages = Json::array();
      for (const auto& [stage, how, loss] : stages_) {
        if (stage.substr(0, stage.find('/')) != experiment.name) continue;
        out_ << "  stage " << stage.substr(stage.find('/') + 1) << ": " << how;
        if (loss) out_ << ", final loss " << std::fixed << std::setprecision(4) << *loss << std::defaultfloat;
        if (auto it = exports_.find(stage); it != exports_.end()) out_ << ", exported to " << it->second;
        out_ << "\n";
        stages.push_back({{"stage", stage}, {"how", how}, {"final_loss", loss ? Json(*loss) : Json(nullptr)},
                          {"export", exports_.count(stage) ? Json(exports_[stage]) : Json(nullptr)}});
      }
      Json evaluation = Json::array();
      if (auto it = evaluations_.find(experiment.name); it != evaluations_.end()) {
        PrintEvaluation(it->second);
        for (const EvalResult& r : it->second) evaluation.push_back(r.ToJson());
      }
      Json experiment_summary = {{"run_dir", experiment_dirs_[experiment.name].string()},
                                 {"stages", stages},
                                 {"evaluation", evaluation}};
      WriteOrFail(experiment_dirs_[experiment.name] / "summary.json", experiment_summary.dump(2) + "\n");
      summary[experiment.name] = experiment_summary;
    }
    PrintResultLines();
  }

  /// The evaluation table: true score and exact match where the data has gold answers, the held-out NLL of
  /// the best response where it has responses; per family when the prompts name one.
  void PrintEvaluation(const std::vector<EvalResult>& results) {
    if (results.empty()) return;
    const bool gold = results.front().gold.prompts > 0;
    const bool nll = results.front().best_response_nll.has_value();
    out_ << "  evaluation on " << results.front().prompts << " held-out prompts"
         << (gold ? " (score: 1 - normalised edit distance of the greedy completion to the gold answer)" : "") << ":\n";
    out_ << "    " << std::left << std::setw(12) << "model" << std::right;
    if (gold) out_ << std::setw(8) << "score" << std::setw(8) << "exact";
    if (nll) out_ << std::setw(14) << "NLL of best";
    out_ << "\n" << std::fixed;
    for (const EvalResult& r : results) {
      out_ << "    " << std::left << std::setw(12) << r.model << std::right;
      if (gold)
        out_ << std::setprecision(4) << std::setw(8) << r.gold.score() << std::setprecision(3) << std::setw(8)
             << r.gold.exact_match();
      if (nll) out_ << std::setprecision(4) << std::setw(14) << r.best_response_nll.value_or(std::nan(""));
      out_ << "\n";
    }
    if (gold && !results.front().families.empty()) {
      auto width = [](const EvalResult& r) { return std::max<int>(10, static_cast<int>(r.model.size()) + 2); };
      out_ << "  score per family:\n    " << std::left << std::setw(12) << "family" << std::right;
      for (const EvalResult& r : results) out_ << std::setw(width(r)) << r.model;
      out_ << "\n";
      for (const auto& [family, tally] : results.front().families) {
        out_ << "    " << std::left << std::setw(12) << family << std::right << std::setprecision(4);
        for (const EvalResult& r : results) {
          auto it = r.families.find(family);
          out_ << std::setw(width(r)) << (it == r.families.end() ? std::nan("") : it->second.score());
        }
        out_ << "\n";
      }
    }
    out_ << std::defaultfloat << std::setprecision(6);
  }

  /// The machine-readable last line: `RESULT <model>=<score> ...` (held-out mean true score of each evaluated
  /// model), with `experiment=<name>` first when the run has several experiments.
  void PrintResultLines() {
    for (const ir::ExperimentOutputs& experiment : plan_.graph.experiments) {
      auto it = evaluations_.find(experiment.name);
      if (it == evaluations_.end() || it->second.empty() || it->second.front().gold.prompts == 0) continue;
      out_ << "RESULT";
      if (plan_.graph.experiments.size() > 1) out_ << " experiment=" << experiment.name;
      for (const EvalResult& r : it->second)
        out_ << " " << r.model << "=" << std::fixed << std::setprecision(4) << r.gold.score();
      out_ << std::defaultfloat << std::setprecision(6) << "\n";
    }
  }

  // --- small helpers ---

  /// --device, else fusec.toml's `[run] device`, else the experiment's `device`; `auto` is CUDA when present.
  torch::Device ResolveDevice() const {
    std::string device = options_.device;
    std::string where = "--device " + device;
    if (device == "auto" && plan_.config_device != "auto") {
      device = plan_.config_device;
      where = "fusec.toml's `[run] device = \"" + device + "\"`";
    }
    if (device == "auto" && !plan_.graph.experiments.empty()) {
      device = std::string(ir::Spelling(plan_.graph.experiments.front().device));
      where = "the experiment's `device = " + device + "`";
    }
    if (device == "cpu") return torch::kCPU;
    if (device == "cuda" && !torch::cuda::is_available()) throw RunError(where + ": no CUDA device is available");
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  }

  void WriteOrFail(const fs::path& path, const std::string& text) const {
    if (!WriteWholeFile(path.string(), text)) throw RunError(path.string() + ": cannot write");
  }

  const PlannedRun& plan_;
  const RunOptions& options_;
  std::ostream& out_;
  std::ostream& err_;
  StageCache cache_;
  fs::path base_dir_;
  torch::Device device_ = torch::kCPU;
  std::map<uint32_t, Value> values_;
  std::map<std::string, fs::path> experiment_dirs_;
  std::map<std::string, std::string> exports_;
  std::map<std::string, std::vector<EvalResult>> evaluations_;
  struct StageRecord {
    std::string stage;
    std::string how;
    std::optional<double> loss;
  };
  std::vector<StageRecord> stages_;
  std::string current_ = "run";
  std::string started_ = UtcNow();
  bool warned_precision_ = false;
};

}  // namespace

int RunGraph(const PlannedRun& plan, const RunOptions& options, std::ostream& out, std::ostream& err) {
  // On the CPU, reruns are bit-identical anyway (same machine and thread count); --deterministic also makes
  // LibTorch refuse kernels without a deterministic implementation (some CUDA ones).
  if (options.deterministic) at::globalContext().setDeterministicAlgorithms(true, false);
  return Executor(plan, options, out, err).Run();
}

}  // namespace fusec::rt
