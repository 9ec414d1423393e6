#include "compiler/driver/driver.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <toml++/toml.h>

#include "compiler/cache/cache.h"
#include "compiler/diag/command_line.h"
#include "compiler/diag/diagnostics.h"
#include "compiler/diag/suggest.h"
#include "compiler/driver/manifest.h"
#include "compiler/lower/lower.h"
#include "compiler/passes/passes.h"
#include "compiler/sema/check.h"
#include "compiler/source/toml_span.h"
#include "compiler/support/sha256.h"

#ifndef FUSEC_VERSION
#define FUSEC_VERSION "0.0.0"
#endif

namespace fusec {
namespace {

namespace fs = std::filesystem;

/// What identifies the contents of a file an experiment reads: a data file by the SHA-256 of its bytes, a
/// model directory by the names, sizes and modification times of its files (hashing many gigabytes of weights
/// on every plan would be too slow); `missing` when there is none (`fusec run` reports it when it reads it).
std::string Fingerprint(const fs::path& path, bool is_model_dir) {
  std::error_code ec;
  if (!is_model_dir) {
    std::string digest = fs::is_regular_file(path, ec) ? Sha256File(path.string()) : "";
    return digest.empty() ? "missing" : "sha256:" + digest;
  }
  if (!fs::is_directory(path, ec)) return "missing";
  std::vector<std::string> entries;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    if (!entry.is_regular_file(ec)) continue;
    auto size = entry.file_size(ec);
    auto time = entry.last_write_time(ec).time_since_epoch().count();
    entries.push_back(entry.path().filename().string() + " " + std::to_string(size) + " " + std::to_string(time));
  }
  std::sort(entries.begin(), entries.end());
  Sha256 hash;
  for (const std::string& entry : entries) hash.Update(entry).Update("\n");
  return "files:" + hash.HexDigest();
}

/// Lowers a checked program and adds each file's Fingerprint to the node that reads it, so that the content
/// hashes (and the stage cache) see a changed file. Each file is read once, however many nodes (sweep points)
/// read it. Relative paths start at `input_base` (InputBase of the main file, as the runtime resolves them; a
/// manifest's replay passes the directory the manifest recorded).
ir::Graph LowerWithFingerprints(const sema::CheckedProgram& program, const std::string& input_base) {
  ir::Graph graph = Lower(program);
  const fs::path base = input_base;
  std::map<fs::path, std::string> fingerprints;
  for (ir::Node& node : graph.nodes) {
    std::string* path_text = nullptr;
    std::string* fingerprint = nullptr;
    bool is_model = false;
    if (auto* data = node.get_if<ir::LoadData>()) {
      path_text = &data->data.path;
      fingerprint = &data->data.fingerprint;
    } else if (auto* model = node.get_if<ir::LoadModel>()) {
      if (auto* hf = std::get_if<ir::HfModelSpec>(&model->model)) {
        path_text = &hf->path;
        fingerprint = &hf->fingerprint;
        is_model = true;
      }
    } else if (auto* score = node.get_if<ir::Score>()) {
      if (auto* reward_model = std::get_if<ir::RewardModelSpec>(&score->scorer)) {
        path_text = &reward_model->path;
        fingerprint = &reward_model->fingerprint;
        is_model = true;
      }
    }
    if (path_text == nullptr) continue;
    fs::path path = ResolveInputPath(input_base, *path_text);
    auto [it, inserted] = fingerprints.try_emplace(path);
    if (inserted) it->second = Fingerprint(path, is_model);
    *fingerprint = it->second;
  }
  return graph;
}

/// Reports every file the program reads that is not there: a `jsonl(...)` data file that is no regular file, an
/// `hf_model(...)` or `reward_model(...)` directory that is no directory, at the first call that names it (once per file, however
/// many sweep points and stages read it). What is inside them is the runtime's to check (it reads them). Each experiment's
/// relative paths start at the directory of the file it is declared in, as `fusec run` resolves them.
void ReportMissingInputs(const sema::CheckedProgram& program, const SourceManager& sources,
                         Diagnostics& diagnostics) {
  std::map<uint32_t, sema::CheckedProgram> by_file;
  for (const sema::CheckedExperiment& experiment : program.experiments) {
    by_file[experiment.span.file.value].experiments.push_back(experiment);
  }
  std::set<std::string> reported;
  for (const auto& [file, experiments] : by_file) {
    const std::string base = InputBase(sources.file(FileId{file}).canonical_path());
    for (const ir::Node& node : Lower(experiments).nodes) {
      std::string written;
      bool is_model = false;
      const char* what = "data file";
      if (const auto* data = node.get_if<ir::LoadData>()) {
        written = data->data.path;
      } else if (const auto* model = node.get_if<ir::LoadModel>()) {
        const auto* hf = std::get_if<ir::HfModelSpec>(&model->model);
        if (hf == nullptr) continue;
        written = hf->path;
        is_model = true;
        what = "model directory";
      } else if (const auto* score = node.get_if<ir::Score>()) {
        const auto* reward_model = std::get_if<ir::RewardModelSpec>(&score->scorer);
        if (reward_model == nullptr) continue;
        written = reward_model->path;
        is_model = true;
        what = "reward-model directory";
      } else {
        continue;
      }
      const std::string path = ResolveInputPath(base, written);
      if (!reported.insert(path + (is_model ? " model" : " data")).second) continue;
      std::error_code ec;
      fs::file_status status = fs::status(path, ec);
      std::string problem;
      if (!fs::exists(status)) {
        problem = "does not exist";
      } else if (is_model && !fs::is_directory(status)) {
        problem = "is not a directory";
      } else if (!is_model && !fs::is_regular_file(status)) {
        problem = fs::is_directory(status) ? "is a directory, not a file" : "is not a regular file";
      } else {
        continue;
      }
      // Where it was looked for: relative to the current directory when below it, else absolute.
      std::string shown = fs::path(path).lexically_proximate(fs::current_path(ec)).string();
      if (ec || shown.empty() || shown.rfind("..", 0) == 0) shown = path;
      diagnostics.Report(DiagnosticKind::MissingInput, node.span,
                         std::string("the ") + what + " `" + written + "` " + problem + " (" + shown + ")")
          .Help("paths are relative to the .fuse file; for an input made later (downloaded, generated), pass "
                "`--allow-missing-inputs`");
    }
  }
}

/// Where the stage cache is when neither `--cache`, `$FUSEC_CACHE` nor fusec.toml says: the user's cache
/// directory, `$XDG_CACHE_HOME/fusec`, else `~/.cache/fusec`; the same from every directory, so a run started
/// elsewhere reuses what the last one trained. Nullopt when neither variable is set.
std::optional<std::string> DefaultCacheDir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg != nullptr && fs::path(xdg).is_absolute()) return (fs::path(xdg) / "fusec").lexically_normal().string();
  const char* home = std::getenv("HOME");
  if (home != nullptr && fs::path(home).is_absolute()) return (fs::path(home) / ".cache" / "fusec").string();
  return std::nullopt;
}

constexpr const char* kCacheOptionHelp =
    "The stage cache directory (default: $FUSEC_CACHE, else fusec.toml's [cache] dir, else $XDG_CACHE_HOME/fusec "
    "or ~/.cache/fusec)";

struct CommonOptions {
  bool allow_missing_inputs = false;  // `check`, `plan`: inputs made later are no error
  std::string stdlib;
  std::string config;
  std::string cache;
  std::vector<std::string> overrides;
};

/// Settings from fusec.toml (the `--config` file, or ./fusec.toml when it exists).
struct Config {
  std::string cache_dir;  // [cache] dir, resolved against fusec.toml's directory; then see LoadConfig
  std::string device = "auto";  // [run] device: where `fusec run` trains unless --device says
};

void AddStdlibOption(CLI::App& command, CommonOptions& options) {
  command.add_option("--stdlib", options.stdlib, "The stdlib directory (default: found next to fusec)")
      ->check(CLI::ExistingDirectory);
}

void AddCacheOptions(CLI::App& command, CommonOptions& options) {
  command.add_option("--config", options.config, "A fusec.toml file (default: ./fusec.toml if it exists)")
      ->check(CLI::ExistingFile);
  command.add_option("--cache", options.cache, kCacheOptionHelp);
}

void AddInputsOption(CLI::App& command, CommonOptions& options) {
  command.add_flag("--allow-missing-inputs", options.allow_missing_inputs,
                   "Do not report data files and model directories that are not there yet (made later)");
}

void AddOverrideOption(CLI::App& command, CommonOptions& options) {
  command.add_option("--set", options.overrides, "Override a field: --set po.optim.lr=1e-6 (repeatable)");
}

/// Reads fusec.toml. Problems are diagnostics in the file; unknown keys get a suggestion.
std::optional<Config> LoadConfig(const CommonOptions& common, SourceManager& sources, Diagnostics& diagnostics) {
  Config config;
  std::string path = common.config;
  if (path.empty() && fs::is_regular_file("fusec.toml")) path = "fusec.toml";
  if (!path.empty()) {
    std::string error;
    auto file = sources.Load(path, path, &error);
    if (!file) {
      diagnostics.Report(DiagnosticKind::InvalidConfig, SourceSpan{}, "cannot read `" + path + "`: " + error);
      return std::nullopt;
    }
    const SourceFile& source = sources.file(*file);
    auto span_of = [&](const toml::source_region& region) { return TomlSpan(source, *file, region); };
    toml::table table;
    try {
      table = toml::parse(source.text(), path);
    } catch (const toml::parse_error& parse_error) {
      diagnostics.Report(DiagnosticKind::InvalidConfig, span_of(parse_error.source()),
                         "invalid TOML: " + std::string(parse_error.description()));
      return std::nullopt;
    }
    bool ok = true;
    auto unknown = [&](const toml::key& key, const std::vector<std::string>& known, const std::string& where) {
      auto builder = diagnostics.Report(DiagnosticKind::InvalidConfig, span_of(key.source()),
                                        "unknown setting `" + std::string(key.str()) + "`" + where);
      std::string hint = DidYouMean(key.str(), known);
      builder.Help(hint.empty() ? "fusec.toml knows `[cache] dir` and `[run] device`" : hint);
      ok = false;
    };
    for (const auto& [key, node] : table) {
      if (key.str() != "cache" && key.str() != "run") {
        unknown(key, {"cache", "run"}, "");
        continue;
      }
      const toml::table* section = node.as_table();
      if (section == nullptr) {
        diagnostics.Report(DiagnosticKind::InvalidConfig, span_of(node.source()),
                           "`" + std::string(key.str()) + "` must be a table");
        ok = false;
        continue;
      }
      const std::string setting = key.str() == "cache" ? "dir" : "device";
      for (const auto& [section_key, value] : *section) {
        if (section_key.str() != setting) {
          unknown(section_key, {setting}, " in [" + std::string(key.str()) + "]");
          continue;
        }
        auto text = value.value<std::string>();
        if (!text) {
          diagnostics.Report(DiagnosticKind::InvalidConfig, span_of(value.source()), "`" + setting + "` must be a string");
          ok = false;
          continue;
        }
        if (setting == "device") {
          if (*text != "auto" && *text != "cpu" && *text != "cuda") {
            diagnostics.Report(DiagnosticKind::InvalidConfig, span_of(value.source()),
                               "`device` is `" + *text + "`; it must be auto, cpu or cuda");
            ok = false;
            continue;
          }
          config.device = *text;
          continue;
        }
        // Relative to fusec.toml, like every path written in a file.
        fs::path resolved = fs::path(*text).is_absolute() ? fs::path(*text) : fs::path(path).parent_path() / *text;
        config.cache_dir = resolved.lexically_normal().string();
      }
    }
    if (!ok) return std::nullopt;
  }
  // The cache: --cache, else $FUSEC_CACHE, else fusec.toml's, else the user's cache directory.
  const char* from_environment = std::getenv("FUSEC_CACHE");
  if (!common.cache.empty()) {
    config.cache_dir = common.cache;
  } else if (from_environment != nullptr && *from_environment != '\0') {
    config.cache_dir = from_environment;
  } else if (config.cache_dir.empty()) {
    std::optional<std::string> fallback = DefaultCacheDir();
    if (!fallback) {
      diagnostics.Report(DiagnosticKind::InvalidConfig, SourceSpan{},
                         "no stage cache directory: neither --cache, $FUSEC_CACHE, fusec.toml's `[cache] dir`, "
                         "$XDG_CACHE_HOME nor $HOME says where it is")
          .Help("pass `--cache DIR` or set FUSEC_CACHE");
      return std::nullopt;
    }
    config.cache_dir = *fallback;
  }
  return config;
}

struct Checked {
  SourceManager sources;
  Diagnostics diagnostics;
  sema::CheckedProgram program;
};

std::unique_ptr<Checked> CheckFiles(const std::vector<std::string>& files, const CommonOptions& common) {
  auto checked = std::make_unique<Checked>();
  CheckOptions options;
  options.files = files;
  options.stdlib_dir = common.stdlib;
  options.overrides = common.overrides;
  checked->program = Check(options, checked->sources, checked->diagnostics);
  return checked;
}

void Report(const Diagnostics& diagnostics, const SourceManager& sources, std::ostream& err) {
  err << RenderAll(diagnostics, sources);
  if (!diagnostics.all().empty()) err << Summary(diagnostics) << "\n";
}

std::string Plural(size_t n, const char* word) { return std::to_string(n) + " " + word + (n == 1 ? "" : "s"); }

/// Adds a MissingInput error for every input file of `checked` that is not there; false (after printing the
/// diagnostics so far and the bug) when lowering it hit an internal error.
bool ReportedMissingInputs(Checked& checked, std::ostream& err) {
  try {
    ReportMissingInputs(checked.program, checked.sources, checked.diagnostics);
  } catch (const std::logic_error& bug) {
    Report(checked.diagnostics, checked.sources, err);
    err << "internal error: " << bug.what() << "\nthis is a bug in fusec; please report it with the input\n";
    return false;
  }
  return true;
}

int RunCheck(const std::vector<std::string>& files, const CommonOptions& common, std::ostream& out,
             std::ostream& err) {
  auto checked = CheckFiles(files, common);
  if (!checked->diagnostics.has_errors() && !common.allow_missing_inputs &&
      !ReportedMissingInputs(*checked, err)) {
    return kExitInternal;
  }
  Report(checked->diagnostics, checked->sources, err);
  if (checked->diagnostics.has_errors()) return kExitErrors;
  size_t stages = 0;
  for (const auto& experiment : checked->program.experiments) stages += experiment.stages.size();
  out << "ok: " << Plural(files.size(), "file") << ", " << Plural(checked->program.experiments.size(), "experiment")
      << ", " << Plural(stages, "stage") << "\n";
  return kExitOk;
}

struct PlanOptions {
  std::string file;
  std::string emit = "ir";
  bool print_after_all = false;
  bool verify_each = false;
  std::string manifest_out;
  std::string from_manifest;
};

/// The stage cache at `dir` opened for `use` (StageCache::Open), or nullopt after printing why not.
std::optional<StageCache> OpenCacheOrReport(const std::string& dir, CacheUse use, std::ostream& err) {
  std::string error;
  std::optional<StageCache> cache = StageCache::Open(dir, use, &error);
  if (!cache) {
    err << "error: " << error << " [InvalidConfig]\n"
        << "  = help: name a stage cache with `--cache DIR` or fusec.toml's `[cache] dir` (a new or empty directory "
           "becomes one); a cache written before fusec marked its caches can be adopted by writing `format = 1` "
           "into its fusec-cache.toml\n";
  }
  return cache;
}

/// Removes a scratch directory however the command ends.
struct ScratchDirectory {
  std::string path;
  ~ScratchDirectory() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

int RunPlan(PlanOptions plan, CommonOptions common, std::ostream& out, std::ostream& err) {
  std::optional<RunManifest> replay;
  ScratchDirectory scratch_dir;
  std::string& scratch = scratch_dir.path;
  if (!plan.from_manifest.empty()) {
    std::ifstream in(plan.from_manifest, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    std::string error;
    replay = RunManifestFromToml(text.str(), &error);
    if (!in || !replay) {
      err << "error: cannot read the manifest `" << plan.from_manifest << "`: " << error << " [InvalidConfig]\n";
      return kExitErrors;
    }
    scratch = (fs::temp_directory_path() / ("fusec-manifest-" + std::to_string(::getpid()))).string();
    auto root = MaterializeSources(*replay, scratch, &common.stdlib, &error);
    if (!root) {
      err << "error: cannot write the manifest's sources: " << error << " [InvalidConfig]\n";
      return kExitErrors;
    }
    plan.file = *root;
    common.overrides = replay->overrides;
  }
  // A manifest's inputs are where they were when it was written, not beside the scratch copy of its sources.
  const std::string input_base =
      replay && !replay->input_base.empty() ? replay->input_base : InputBase(plan.file);
  auto checked = CheckFiles({plan.file}, common);
  std::optional<Config> config = LoadConfig(common, checked->sources, checked->diagnostics);
  // A replay reads its inputs where the manifest recorded them and names those that changed (below).
  if (!checked->diagnostics.has_errors() && !common.allow_missing_inputs && !replay &&
      !ReportedMissingInputs(*checked, err)) {
    return kExitInternal;
  }
  if (checked->diagnostics.has_errors() || !config) {
    Report(checked->diagnostics, checked->sources, err);
    return kExitErrors;
  }
  if (plan.emit == "ast") {
    Report(checked->diagnostics, checked->sources, err);
    out << sema::PrintProgram(checked->program, checked->sources);
    return kExitOk;
  }
  std::optional<StageCache> opened = OpenCacheOrReport(config->cache_dir, CacheUse::Read, err);
  if (!opened) return kExitErrors;
  StageCache& cache = *opened;
  PipelineOptions options;
  options.verify_each = plan.verify_each;
  options.print_after_all = plan.print_after_all;
  options.dump = &out;
  options.sources = &checked->sources;
  options.cache = &cache;
  options.diagnostics = &checked->diagnostics;
  ir::Graph graph;
  try {
    graph = RunPipeline(LowerWithFingerprints(checked->program, input_base), options);
  } catch (const std::logic_error& bug) {
    Report(checked->diagnostics, checked->sources, err);
    err << "internal error: " << bug.what() << "\nthis is a bug in fusec; please report it with the input\n";
    return kExitInternal;
  }
  Report(checked->diagnostics, checked->sources, err);
  if (plan.emit == "ir") {
    size_t cached = std::count_if(graph.nodes.begin(), graph.nodes.end(), [](const ir::Node& n) { return n.cached; });
    out << "; " << Plural(graph.nodes.size(), "node") << ", " << cached << " cached (cache: " << cache.dir() << ")\n";
    out << ir::PrintGraph(graph, checked->sources);
  } else if (plan.emit == "json") {
    out << ir::ToJson(graph, checked->sources);
  } else if (plan.emit == "dot") {
    out << ir::ToDot(graph);
  }
  if (!plan.manifest_out.empty()) {
    RunManifest manifest =
        MakeRunManifest(plan.file, common.overrides, checked->sources, checked->program, graph, input_base);
    std::ofstream file(plan.manifest_out, std::ios::binary);
    file << RunManifestToToml(manifest);
    if (!file) {
      err << "error: cannot write the manifest `" << plan.manifest_out << "` [InvalidConfig]\n";
      return kExitErrors;
    }
  }
  if (replay) {
    // A changed input explains the hashes that differ: name it first.
    std::map<std::string, std::string> current;
    for (const ManifestInput& input : GraphInputs(graph, input_base)) current[input.path] = input.fingerprint;
    bool inputs_match = true;
    for (const ManifestInput& recorded : replay->inputs) {
      auto now = current.find(recorded.path);
      if (now == current.end() || now->second == recorded.fingerprint) continue;
      inputs_match = false;
      err << "error: the input of node `" << recorded.node << "` differs from the manifest's: `" << recorded.path
          << "` was recorded " << recorded.fingerprint << ", now " << now->second << " [InvalidConfig]\n";
    }
    if (!inputs_match) {
      err << "help: the manifest reproduces the plan of the inputs as they were; restore them, or plan the "
             "experiment anew\n";
      return kExitErrors;
    }
    std::vector<std::pair<std::string, std::string>> now;
    for (size_t i = 0; i < graph.nodes.size(); ++i) now.emplace_back(std::to_string(i), graph.nodes[i].hash);
    bool same = now.size() == replay->node_hashes.size();
    for (size_t i = 0; same && i < now.size(); ++i) same = now[i].second == replay->node_hashes[i].second;
    if (!same) {
      err << "error: the plan differs from the manifest's: its node hashes do not match ("
          << replay->fusec_version << " wrote it, this is " << VersionString() << ") [InvalidConfig]\n";
      return kExitErrors;
    }
    err << "reproduced: " << Plural(graph.nodes.size(), "node") << ", every hash matches the manifest\n";
  }
  return kExitOk;
}

std::string HumanSize(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(units)) {
    value /= 1024;
    ++unit;
  }
  std::ostringstream out;
  out.precision(unit == 0 ? 0 : 1);
  out << std::fixed << value << " " << units[unit];
  return out.str();
}

/// The stage cache fusec.toml (or --cache) names, for the `fusec cache` commands; nullopt after reporting a
/// bad configuration.
std::optional<StageCache> OpenConfiguredCache(const CommonOptions& common, std::ostream& err,
                                              CacheUse use = CacheUse::Inspect) {
  SourceManager sources;
  Diagnostics diagnostics;
  auto config = LoadConfig(common, sources, diagnostics);
  Report(diagnostics, sources, err);
  if (!config) return std::nullopt;
  return OpenCacheOrReport(config->cache_dir, use, err);
}

/// The stages in flight (checkpoints that `fusec run` resumes), after the entries.
void PrintResumable(const StageCache& cache, std::ostream& out) {
  std::vector<ResumableStage> stages = cache.Resumable();
  if (stages.empty()) return;
  out << Plural(stages.size(), "stage") << " in flight (`fusec run` resumes them; `--restart` discards one):\n";
  for (const ResumableStage& stage : stages) {
    out << stage.hash.substr(0, 12) << "  resumable: ";
    if (stage.sample_shards > 0) {
      out << "a sampling step with " << Plural(static_cast<size_t>(stage.sample_shards), "shard")
          << " done (it samples only the rest)\n";
    } else if (stage.checkpoint.empty()) {
      out << "no checkpoint published yet (it restarts at step 1)\n";
    } else {
      out << "checkpoint at step " << stage.step << "\n";
    }
  }
}

int RunCacheList(const CommonOptions& common, std::ostream& out, std::ostream& err) {
  // Listing a cache that does not exist yet lists nothing; verifying or cleaning one is an error.
  std::optional<StageCache> cache = OpenConfiguredCache(common, err, CacheUse::Read);
  if (!cache) return kExitErrors;
  auto entries = cache->List(CacheCheck::Quick);
  out << "cache " << cache->dir() << ": " << Plural(entries.size(), "entry") << "\n";
  for (const CacheLookup& entry : entries) {
    std::string hash = fs::path(entry.path).filename().string();
    if (entry.status != CacheStatus::Complete) {
      out << hash.substr(0, 12) << "  corrupt: " << entry.problem << "\n";
      continue;
    }
    uint64_t size = 0;
    for (const CacheOutput& output : entry.manifest.outputs) size += output.size;
    std::string stages;
    for (const std::string& stage : entry.manifest.stages) stages += (stages.empty() ? "" : " ") + stage;
    out << hash.substr(0, 12) << "  " << entry.manifest.kind << "  " << HumanSize(size) << "  "
        << entry.manifest.finished << "  " << stages << "\n";
  }
  PrintResumable(*cache, out);
  return kExitOk;
}

int RunCacheVerify(const CommonOptions& common, bool remove, std::ostream& out, std::ostream& err) {
  std::optional<StageCache> cache = OpenConfiguredCache(common, err);
  if (!cache) return kExitErrors;
  size_t bad = 0;
  auto entries = cache->List(CacheCheck::Full);
  for (const CacheLookup& entry : entries) {
    if (entry.status == CacheStatus::Complete) continue;
    ++bad;
    err << "corrupt: " << entry.path << ": " << entry.problem << (remove ? " (removed)" : "") << "\n";
    if (remove) {
      std::error_code ec;
      fs::remove_all(entry.path, ec);
    }
  }
  out << "verified " << Plural(entries.size(), "entry") << ": " << (entries.size() - bad) << " complete, " << bad
      << " corrupt\n";
  PrintResumable(*cache, out);
  return bad == 0 || remove ? kExitOk : kExitErrors;
}

int RunCacheGc(const std::vector<std::string>& keep_files, bool dry_run, const CommonOptions& common,
               std::ostream& out, std::ostream& err) {
  std::set<std::string> keep;
  if (!keep_files.empty()) {
    // Keep what the plans of these files use.
    for (const std::string& file : keep_files) {
      auto checked = CheckFiles({file}, common);
      if (checked->diagnostics.has_errors()) {
        Report(checked->diagnostics, checked->sources, err);
        return kExitErrors;
      }
      PipelineOptions options;
      ir::Graph graph = RunPipeline(LowerWithFingerprints(checked->program, InputBase(file)), options);
      for (const ir::Node& node : graph.nodes) keep.insert(node.hash);
    }
  }
  std::optional<StageCache> cache = OpenConfiguredCache(common, err);
  if (!cache) return kExitErrors;
  CacheGcReport report = cache->Collect(keep, /*keep_all_complete=*/keep_files.empty(), dry_run);
  for (const std::string& removed : report.removed) out << (dry_run ? "would remove " : "removed ") << removed << "\n";
  out << (dry_run ? "would free " : "freed ") << HumanSize(report.bytes) << " in "
      << Plural(report.removed.size(), "directory") << "\n";
  return kExitOk;
}

}  // namespace

std::string VersionString() { return std::string("fusec ") + FUSEC_VERSION; }

const std::vector<std::string>& RuntimeCommandNames() {
  static const std::vector<std::string> names = {"run", "init-model", "score", "generate", "tokenize", "synth"};
  return names;
}

std::unique_ptr<PlannedProgram> PlanForRun(const PlanRequest& request, std::ostream& err) {
  CommonOptions common;
  common.stdlib = request.stdlib;
  common.config = request.config;
  common.cache = request.cache;
  common.overrides = request.overrides;
  auto planned = std::make_unique<PlannedProgram>();
  CheckOptions options;
  options.files = {request.file};
  options.stdlib_dir = common.stdlib;
  options.overrides = common.overrides;
  planned->program = Check(options, planned->sources, planned->diagnostics);
  std::optional<Config> config = LoadConfig(common, planned->sources, planned->diagnostics);
  if (planned->diagnostics.has_errors() || !config) {
    Report(planned->diagnostics, planned->sources, err);
    return nullptr;
  }
  planned->cache_dir = config->cache_dir;
  planned->device = config->device;
  std::optional<StageCache> opened = OpenCacheOrReport(config->cache_dir, CacheUse::Write, err);
  if (!opened) return nullptr;
  StageCache& cache = *opened;
  PipelineOptions pipeline;
  pipeline.sources = &planned->sources;
  pipeline.cache = &cache;
  pipeline.diagnostics = &planned->diagnostics;
  try {
    planned->graph = RunPipeline(LowerWithFingerprints(planned->program, InputBase(request.file)), pipeline);
  } catch (const std::logic_error& bug) {
    Report(planned->diagnostics, planned->sources, err);
    err << "internal error: " << bug.what() << "\nthis is a bug in fusec; please report it with the input\n";
    return nullptr;
  }
  Report(planned->diagnostics, planned->sources, err);
  planned->manifest =
      MakeRunManifest(request.file, request.overrides, planned->sources, planned->program, planned->graph,
                      InputBase(request.file));
  return planned;
}

int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{"fusec: a compiler and runtime for FuseRL experiments.\n"
               "Checks .fuse experiment files, explains them, and plans what they would run.",
               "fusec"};
  app.set_version_flag("--version", VersionString() + " (stdlib: " + DefaultStdlibDir() + ")");
  app.require_subcommand(1);
  app.footer("Runtime commands (run by fusec-rt; see `fusec <command> --help`):\n"
             "  run         run an experiment: train, export, evaluate (also `fusec FILE.fuse`)\n"
             "  init-model  write a randomly initialised model directory\n"
             "  score       log-probabilities of responses given their prompts\n"
             "  generate    completions of prompts (greedy or sampled)\n"
             "  tokenize    token ids of text or of a chat\n"
             "  synth       write a synthetic benchmark (fusion-mini)\n\n"
             "Exit status: 0 when clean (warnings allowed), 1 when the input has errors, 2 for usage errors.\n"
             "Documentation: docs/language.md, runtime/README.md\n");

  CommonOptions common;
  std::vector<std::string> check_files;
  CLI::App* check = app.add_subcommand("check", "Check .fuse files and report every problem");
  check->add_option("files", check_files, "The .fuse files to check")->required();
  AddStdlibOption(*check, common);
  AddOverrideOption(*check, common);
  AddInputsOption(*check, common);

  PlanOptions plan_options;
  CLI::App* plan = app.add_subcommand("plan", "Check a .fuse file and print the graph it would run");
  plan->add_option("file", plan_options.file, "The .fuse file");
  plan->add_option("--emit", plan_options.emit,
                   "What to print: `ir` (the optimised graph), `json`, `dot` (Graphviz), `ast` (the checked "
                   "experiments)")
      ->check(CLI::IsMember({"ast", "ir", "json", "dot"}))
      ->capture_default_str();
  plan->add_flag("--print-after-all", plan_options.print_after_all, "Print the graph after every pass");
  plan->add_flag("--verify-each", plan_options.verify_each, "Verify the graph after every pass (on in debug builds)");
  plan->add_option("--manifest", plan_options.manifest_out, "Also write the run manifest to this file");
  plan->add_option("--from-manifest", plan_options.from_manifest,
                   "Plan from a run manifest's sources and check that every hash matches")
      ->check(CLI::ExistingFile);
  AddStdlibOption(*plan, common);
  AddOverrideOption(*plan, common);
  AddInputsOption(*plan, common);
  AddCacheOptions(*plan, common);

  CLI::App* cache = app.add_subcommand("cache", "Inspect and clean the stage cache");
  cache->require_subcommand(1);
  CLI::App* cache_ls = cache->add_subcommand("ls", "List the entries");
  bool verify_remove = false;
  CLI::App* cache_verify = cache->add_subcommand("verify", "Check every entry's checksums");
  cache_verify->add_flag("--remove", verify_remove, "Remove corrupt entries");
  std::vector<std::string> gc_files;
  bool gc_dry_run = false;
  CLI::App* cache_gc = cache->add_subcommand(
      "gc", "Remove staging leftovers and corrupt entries; with files, also entries their plans do not use");
  cache_gc->add_option("files", gc_files, "Keep the entries of these experiments' plans");
  cache_gc->add_flag("--dry-run", gc_dry_run, "Only say what would be removed");
  AddStdlibOption(*cache_gc, common);
  for (CLI::App* command : {cache_ls, cache_verify, cache_gc}) AddCacheOptions(*command, common);

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
    if (plan->parsed() && plan_options.file.empty() && plan_options.from_manifest.empty()) {
      throw CLI::RequiredError("plan needs a .fuse file (or --from-manifest)");
    }
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {
      app.exit(error, out, err);  // --help, --version
      return kExitOk;
    }
    std::string message = UnknownCommandOrOption(app, args, RuntimeCommandNames()).value_or(error.what());
    if (!message.empty()) message[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(message[0])));
    err << "error: " << message << " [Usage]\nhelp: run `fusec --help` for the commands and their options\n";
    return kExitUsage;
  }
  if (check->parsed()) return RunCheck(check_files, common, out, err);
  if (plan->parsed()) return RunPlan(plan_options, common, out, err);
  if (cache_ls->parsed()) return RunCacheList(common, out, err);
  if (cache_verify->parsed()) return RunCacheVerify(common, verify_remove, out, err);
  if (cache_gc->parsed()) return RunCacheGc(gc_files, gc_dry_run, common, out, err);
  return kExitUsage;
}

}  // namespace fusec
