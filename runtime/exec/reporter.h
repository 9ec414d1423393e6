// What a run shows and leaves behind: progress on stderr, metrics.jsonl, summary.json, the evaluation tables
// and the `RESULT` line.
//
// The executor's walk and its node bodies notify the reporter (a stage trained or came from the cache, a
// model was exported or evaluated, a step finished); the reporter alone formats. So the walk stays a walk, and
// changing what a run prints touches one file.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "compiler/ir/ir.h"

namespace fusec::rt {

struct StepMetrics;

/// Scores of greedy completions against gold answers, over some prompts.
struct GoldTally {
  int64_t prompts = 0;
  double score_sum = 0;  // EditSimilarity(completion, gold)
  int64_t exact = 0;     // completions equal to the gold answer (surrounding whitespace ignored)

  void Add(double score, bool is_exact);
  double score() const;
  double exact_match() const;
};

/// One evaluated model, for the summary.
struct EvalResult {
  std::string model;
  int64_t prompts = 0;
  std::optional<double> best_response_nll;  // mean per-token NLL of each prompt's best response, if any
  double mean_generated_tokens = 0;
  GoldTally gold;                             // over the prompts with a gold answer
  std::map<std::string, GoldTally> families;  // the same, per task family (prompts with a `family`)

  nlohmann::ordered_json ToJson() const;
  /// Reads what ToJson wrote (a cached evaluation); sums are rebuilt from the means. Throws on a bad shape.
  static EvalResult FromJson(const nlohmann::ordered_json& json);
};

/// Writes `text` to `path`, or throws a FileSystem RunError naming it: how the run writes its output files.
void WriteOrThrow(const std::filesystem::path& path, const std::string& text);

class Reporter {
 public:
  Reporter(std::ostream& out, std::ostream& err) : out_(out), err_(err) {}

  /// Progress lines of node bodies (stderr).
  std::ostream& progress() { return err_; }

  /// An experiment's run directory is ready: its manifest and an empty metrics.jsonl are written into
  /// `staging`, where the run writes until it is published as `dir` (run_directory.h), the name shown.
  void RunStarted(const std::string& experiment, const std::filesystem::path& staging, const std::filesystem::path& dir,
                  const std::string& manifest_toml);
  /// Appends metrics lines to the metrics.jsonl of every experiment the stages belong to.
  void AppendMetrics(const std::vector<std::string>& stages, const std::string& lines);
  /// One optimizer step's metrics: a line of the stage's metrics and, every so often, a progress line.
  void Step(const std::string& label, const StepMetrics& metrics, int64_t first_step,
            std::chrono::steady_clock::time_point start);
  void StageDone(const std::vector<std::string>& stages, const std::string& how, std::optional<double> final_loss);
  void Exported(const std::string& stage, const std::string& path);
  void Evaluated(const std::string& experiment, std::vector<EvalResult> results);

  /// Each experiment's summary: stages, exports, the evaluation table (stdout) and summary.json, then the
  /// `RESULT` lines.
  void Finish(const std::vector<ir::ExperimentOutputs>& experiments);

  /// One metrics.jsonl line.
  static nlohmann::ordered_json MetricsJson(const std::string& stage, const StepMetrics& metrics);
  /// The loss of the last line of a stage's metrics.jsonl text.
  static std::optional<double> LastLoss(const std::string& metrics);
  /// `1:05`, `1h02:03`.
  static std::string FormatDuration(double seconds);

 private:
  void PrintEvaluation(const std::vector<EvalResult>& results);
  void PrintResultLines(const std::vector<ir::ExperimentOutputs>& experiments);

  std::ostream& out_;
  std::ostream& err_;
  std::map<std::string, std::filesystem::path> experiment_dirs_;  // where each experiment's run writes
  std::map<std::string, std::filesystem::path> published_dirs_;   // and its name once published
  std::map<std::string, std::string> exports_;
  std::map<std::string, std::vector<EvalResult>> evaluations_;
  struct StageRecord {
    std::string stage;
    std::string how;
    std::optional<double> loss;
  };
  std::vector<StageRecord> stages_;
};

}  // namespace fusec::rt
