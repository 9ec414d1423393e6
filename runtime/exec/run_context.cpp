#include "runtime/exec/run_context.h"

#include <cmath>
#include <ostream>

#include "runtime/data/examples.h"
#include "runtime/dist/rank_group.h"
#include "runtime/model/checkpoint.h"

namespace fusec::rt {
namespace fs = std::filesystem;

RunContext::RunContext(const PlannedRun& plan, const RunOptions& options, Reporter& reporter, EvalInput eval_input)
    : plan_(plan),
      options_(options),
      reporter_(reporter),
      eval_input_(std::move(eval_input)),
      cache_(plan.cache_dir),
      base_dir_(fs::absolute(options.file).parent_path()),
      started_(UtcNow()) {}

const NodeValue& RunContext::Input(const ir::Node& node, std::string_view slot) {
  const ir::Input* input = node.FindInput(slot);
  if (input == nullptr) {
    throw RunError(RunErrorKind::Internal, "the node has no input `" + std::string(slot) + "` (the verifier allows it)");
  }
  return eval_input_(input->node);
}

std::string RunContext::Resolve(const std::string& path) const {
  return fs::path(path).is_absolute() ? path : (base_dir_ / path).lexically_normal().string();
}

fs::path RunContext::Rebase(const std::string& path) const {
  for (const auto& [output, dir] : run_dirs_) {
    if (path == output) return dir->staging();
    if (path.starts_with(output + "/")) return dir->staging() / path.substr(output.size() + 1);
  }
  return path;
}

fs::path RunContext::Published(const fs::path& written) const {
  for (const auto& [output, dir] : run_dirs_) {
    fs::path published = dir->Published(written);
    if (published != written) return published;
  }
  return written;
}

std::optional<std::string> RunContext::CachedEntry(const ir::Node& node) {
  if (auto known = complete_entries_.find(node.hash); known != complete_entries_.end()) return known->second;
  CacheLookup lookup = cache_.Find(node.hash, CacheCheck::Full);
  if (lookup.status == CacheStatus::Complete) return complete_entries_[node.hash] = lookup.path;
  if (lookup.status == CacheStatus::Corrupt) {
    reporter_.progress() << "warning: " << Label(node) << ": its cache entry is corrupt (" << lookup.problem
                         << "); rebuilding it\n";
  }
  return std::nullopt;
}

namespace {

/// The store key of rank 0's word `what` about `node`.
std::string SharedKey(const ir::Node& node, const PlannedRun& plan, const std::string& what) {
  return "shared/" + std::to_string(&node - plan.graph.nodes.data()) + "/" + what;
}

}  // namespace

void RunContext::TellOtherRanks(const ir::Node& node, const std::string& what, const std::string& value) {
  if (options_.ranks != nullptr && options_.ranks->leader()) options_.ranks->Post(SharedKey(node, plan_, what), value);
}

std::string RunContext::AwaitRankZero(const ir::Node& node, const std::string& what) {
  return options_.ranks->AwaitPost(SharedKey(node, plan_, what));
}

RunContext::SharedStart RunContext::StartShared(const ir::Node& node) {
  SharedStart start;
  if (options_.ranks != nullptr && !options_.ranks->leader()) {
    if (AwaitRankZero(node, "start") == "compute") return start;
    start.cached = EntryRankZeroFound(node);
    return start;
  }
  start.cached = CachedEntry(node);
  if (!start.cached) {
    start.lock = LockEntry(node);  // another process may have computed it meanwhile
    start.cached = CachedEntry(node);
    if (start.cached) start.lock.reset();
  }
  TellOtherRanks(node, "start", start.cached ? "cached" : "compute");
  return start;
}

std::string RunContext::EntryRankZeroFound(const ir::Node& node) {
  if (auto cached = CachedEntry(node)) return *cached;
  throw RunError(RunErrorKind::CacheEntry, options_.ranks->Describe() +
                                               ": rank 0 found this node in the cache, but this rank does not: "
                                               "is the cache directory on a filesystem every rank sees?");
}

FileLock RunContext::LockEntry(const ir::Node& node) {
  const std::string what = "fusec run " + options_.file + " (" + Label(node) + ")";
  std::string holder;
  if (auto lock = FileLock::TryAcquire(cache_.LockPath(node.hash), what, &holder)) return std::move(*lock);
  if (holder.starts_with("cannot")) throw RunError(RunErrorKind::FileSystem, holder);
  reporter_.progress() << "[" << Label(node) << "] waiting: " << holder << " is computing it (lock "
                       << cache_.LockPath(node.hash) << ")\n";
  std::string error;
  auto lock = FileLock::Acquire(cache_.LockPath(node.hash), what, &error);
  if (!lock) throw RunError(RunErrorKind::FileSystem, error);
  return std::move(*lock);
}

std::string RunContext::Commit(const ir::Node& node, const std::string& staging) {
  CacheManifest manifest;
  manifest.hash = node.hash;
  manifest.kind = std::string(ir::Spelling(node.kind()));
  manifest.stages = node.stages;
  manifest.source = ir::SpanText(plan_.sources, node.span);
  manifest.params = ir::ParamsJson(node).dump();
  for (const ir::Input& input : node.inputs) manifest.inputs.emplace_back(input.slot, plan_.graph.at(input.node).hash);
  manifest.fusec_version = plan_.fusec_version;
  manifest.started = started_;
  manifest.finished = UtcNow();
  std::string error;
  auto entry = cache_.CommitEntry(staging, manifest, &error);
  if (!entry) throw RunError(RunErrorKind::FileSystem, "cannot write its cache entry: " + error).Place(staging);
  return *entry;
}

OpenedModel RunContext::Open(const ModelHandle& handle) {
  std::string error;
  auto model = LoadModel(handle.dir, torch::kFloat, device_, &error);
  if (!model) throw RunError(RunErrorKind::ModelDirectory, error).Place(handle.dir);
  auto tokenizer = Tokenizer::Load(handle.dir, &error);
  if (!tokenizer) throw RunError(RunErrorKind::ModelDirectory, error).Place(handle.dir);
  if (tokenizer->vocab_size() > (*model)->config().vocab_size) {
    throw RunError(RunErrorKind::ModelDirectory, "the tokenizer of " + handle.dir + " has " +
                                                     std::to_string(tokenizer->vocab_size()) +
                                                     " tokens, more than the model's vocab_size " +
                                                     std::to_string((*model)->config().vocab_size))
        .Place(handle.dir);
  }
  std::string warning;
  ChatTemplate chat = ResolveChat(handle.chat, *tokenizer, handle.dir, &warning);
  if (!warning.empty() && chat_warned_.insert(handle.dir).second) {
    reporter_.progress() << "warning: " << handle.dir << ": " << warning << "\n";
  }
  return OpenedModel{*model, std::move(tokenizer), chat};
}

LogProbOptions RunContext::LogProbs() const {
  return options_.unoptimized ? LogProbOptions::Naive() : LogProbOptions{};
}

std::string RunContext::Label(const ir::Node& node) {
  return node.stages.empty() ? std::string(ir::Spelling(node.kind())) : node.stages.front();
}
std::vector<int32_t> StopIds(const OpenedModel& opened) {
  std::vector<int32_t> ids;
  for (const std::string& token : {opened.chat.EndOfTurn(), opened.tokenizer->eos_token()}) {
    if (auto id = opened.tokenizer->TokenId(token)) ids.push_back(*id);
  }
  return ids;
}

std::string RunContext::StepLabel(const ir::Node& node) const {
  if (!node.stages.empty() || !node.span.valid()) return Label(node);
  const SourceFile& file = plan_.sources.file(node.span.file);
  return std::string(ir::Spelling(node.kind())) + " at " +
         std::filesystem::path(file.display_name()).filename().string() + ":" +
         std::to_string(file.Locate(node.span.begin).line);
}
std::string RunContext::StageName(const ir::Node& node) {
  std::string label = Label(node);
  return label.substr(label.find('/') + 1);
}
std::string RunContext::ExperimentOf(const ir::Node& node) {
  std::string label = Label(node);
  return label.substr(0, label.find('/'));
}

ChatTemplate ResolveChat(ir::ChatTemplateName name, const Tokenizer& tokenizer, const std::string& source,
                         std::string* warning) {
  std::string error;
  auto chat = ResolveChatTemplate(ir::Spelling(name), tokenizer, source, &error, warning);
  if (!chat) throw RunError(RunErrorKind::Tokenization, error).Place(source);
  return std::move(*chat);
}

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
      throw RunError(RunErrorKind::Tokenization,
                     "prompt `" + record.id + "` (line " + std::to_string(record.line) + "): " + what);
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

void CopyDirectory(const fs::path& from, const fs::path& to) {
  fs::path staging = to;
  staging += ".partial";
  fs::remove_all(staging);
  fs::create_directories(staging.parent_path());
  std::error_code ec;
  fs::copy(from, staging, fs::copy_options::recursive | fs::copy_options::create_hard_links, ec);
  if (ec) {  // another filesystem
    fs::remove_all(staging);
    fs::copy(from, staging, fs::copy_options::recursive);
  }
  fs::remove_all(to);
  fs::rename(staging, to);
}

}  // namespace fusec::rt
