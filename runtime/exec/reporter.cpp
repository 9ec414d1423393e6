#include "runtime/exec/reporter.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "runtime/support/run_error.h"
#include "runtime/support/text.h"
#include "runtime/train/trainer.h"

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

std::string ExperimentOfStage(const std::string& stage) { return stage.substr(0, stage.find('/')); }

}  // namespace

void WriteOrThrow(const fs::path& path, const std::string& text) {
  if (!WriteWholeFile(path.string(), text)) {
    throw RunError(RunErrorKind::FileSystem, "cannot write `" + path.string() + "`").Place(path.string());
  }
}

void GoldTally::Add(double score, bool is_exact) {
  ++prompts;
  score_sum += score;
  exact += is_exact ? 1 : 0;
}
double GoldTally::score() const { return prompts > 0 ? score_sum / static_cast<double>(prompts) : 0; }
double GoldTally::exact_match() const {
  return prompts > 0 ? static_cast<double>(exact) / static_cast<double>(prompts) : 0;
}

Json EvalResult::ToJson() const {
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
      per_family[family] = {{"prompts", tally.prompts}, {"score", tally.score()}, {"exact_match", tally.exact_match()}};
    }
    json["families"] = per_family;
  }
  return json;
}

EvalResult EvalResult::FromJson(const Json& json) {
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
    for (const auto& [family, j] : json.at("families").items()) r.families[family] = tally(j, j.at("prompts").get<int64_t>());
  }
  return r;
}

void Reporter::RunStarted(const std::string& experiment, const fs::path& staging, const fs::path& dir,
                          const std::string& manifest_toml) {
  WriteOrThrow(staging / "manifest.toml", manifest_toml);
  WriteOrThrow(staging / "metrics.jsonl", "");
  experiment_dirs_[experiment] = staging;
  published_dirs_[experiment] = dir;
  err_ << "run " << experiment << " -> " << dir.string() << " (in " << staging.string() << " until it finishes)\n";
}

void Reporter::AppendMetrics(const std::vector<std::string>& stages, const std::string& lines) {
  if (lines.empty()) return;
  for (const std::string& stage : stages) {
    auto it = experiment_dirs_.find(ExperimentOfStage(stage));
    if (it == experiment_dirs_.end()) continue;
    std::ofstream(it->second / "metrics.jsonl", std::ios::app) << lines;
  }
}

void Reporter::Step(const std::string& label, const StepMetrics& m, int64_t first_step,
                    std::chrono::steady_clock::time_point start) {
  int64_t every = std::max<int64_t>(1, m.total_steps / 50);
  if (m.step % every != 0 && m.step != m.total_steps && m.step != first_step) return;
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double eta = seconds / static_cast<double>(m.step - first_step + 1) * static_cast<double>(m.total_steps - m.step);
  err_ << "[" << label << "] step " << m.step << "/" << m.total_steps << "  loss " << std::fixed << std::setprecision(4)
       << m.loss << std::defaultfloat << "  lr " << std::setprecision(2) << std::scientific << m.lr << std::defaultfloat
       << std::setprecision(6) << "  |g| " << std::fixed << std::setprecision(3) << m.grad_norm << std::defaultfloat
       << std::setprecision(6) << "  " << static_cast<int64_t>(m.tokens_per_s) << " tok/s  ETA " << FormatDuration(eta)
       << "\n";
}

void Reporter::StageDone(const std::vector<std::string>& stages, const std::string& how,
                         std::optional<double> final_loss) {
  for (const std::string& stage : stages) stages_.push_back({stage, how, final_loss});
}

void Reporter::Exported(const std::string& stage, const std::string& path) { exports_[stage] = path; }

void Reporter::Evaluated(const std::string& experiment, std::vector<EvalResult> results) {
  evaluations_[experiment] = std::move(results);
}

void Reporter::Finish(const std::vector<ir::ExperimentOutputs>& experiments) {
  for (const ir::ExperimentOutputs& experiment : experiments) {
    const fs::path& dir = experiment_dirs_[experiment.name];
    const fs::path& published = published_dirs_[experiment.name];
    out_ << experiment.name << ": " << published.string() << "\n";
    Json stages = Json::array();
    for (const auto& [stage, how, loss] : stages_) {
      if (ExperimentOfStage(stage) != experiment.name) continue;
      out_ << "  stage " << stage.substr(stage.find('/') + 1) << ": " << how;
      if (loss) out_ << ", final loss " << std::fixed << std::setprecision(4) << *loss << std::defaultfloat;
      auto exported = exports_.find(stage);
      if (exported != exports_.end()) out_ << ", exported to " << exported->second;
      out_ << "\n";
      stages.push_back({{"stage", stage},
                        {"how", how},
                        {"final_loss", loss ? Json(*loss) : Json(nullptr)},
                        {"export", exported != exports_.end() ? Json(exported->second) : Json(nullptr)}});
    }
    Json evaluation = Json::array();
    if (auto it = evaluations_.find(experiment.name); it != evaluations_.end()) {
      PrintEvaluation(it->second);
      for (const EvalResult& r : it->second) evaluation.push_back(r.ToJson());
    }
    Json summary = {{"run_dir", published.string()}, {"stages", stages}, {"evaluation", evaluation}};
    WriteOrThrow(dir / "summary.json", summary.dump(2) + "\n");
  }
  PrintResultLines(experiments);
}

void Reporter::PrintEvaluation(const std::vector<EvalResult>& results) {
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
    if (gold) {
      out_ << std::setprecision(4) << std::setw(8) << r.gold.score() << std::setprecision(3) << std::setw(8)
           << r.gold.exact_match();
    }
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

void Reporter::PrintResultLines(const std::vector<ir::ExperimentOutputs>& experiments) {
  for (const ir::ExperimentOutputs& experiment : experiments) {
    auto it = evaluations_.find(experiment.name);
    if (it == evaluations_.end() || it->second.empty() || it->second.front().gold.prompts == 0) continue;
    out_ << "RESULT";
    if (experiments.size() > 1) out_ << " experiment=" << experiment.name;
    for (const EvalResult& r : it->second) out_ << " " << r.model << "=" << std::fixed << std::setprecision(4) << r.gold.score();
    out_ << std::defaultfloat << std::setprecision(6) << "\n";
  }
}

Json Reporter::MetricsJson(const std::string& stage, const StepMetrics& m) {
  Json json = {{"stage", stage},     {"step", m.step}, {"epoch", m.epoch},   {"loss", m.loss},
               {"lr", m.lr},         {"grad_norm", m.grad_norm}, {"tokens", m.tokens}, {"tokens_per_s", m.tokens_per_s}};
  if (m.chosen_reward) {
    json["chosen_reward"] = *m.chosen_reward;
    json["rejected_reward"] = *m.rejected_reward;
    json["margin"] = *m.margin;
    json["accuracy"] = *m.accuracy;
  }
  json["weight_mean"] = m.weight_mean;
  json["weight_min"] = m.weight_min;
  json["weight_max"] = m.weight_max;
  json["state_mb"] = m.state_mb;
  json["peak_rss_mb"] = m.peak_rss_mb;
  return json;
}

std::optional<double> Reporter::LastLoss(const std::string& metrics) {
  std::istringstream in(metrics);
  std::optional<double> loss;
  for (std::string line; std::getline(in, line);) {
    Json json = Json::parse(line, nullptr, false);
    if (!json.is_discarded() && json.contains("loss")) loss = json["loss"].get<double>();
  }
  return loss;
}

std::string Reporter::FormatDuration(double seconds) {
  auto total = static_cast<int64_t>(seconds + 0.5);
  std::ostringstream out;
  if (total >= 3600) out << total / 3600 << "h";
  out << std::setfill('0') << (total >= 3600 ? std::setw(2) : std::setw(1)) << (total % 3600) / 60 << ":" << std::setw(2)
      << total % 60;
  return out.str();
}

}  // namespace fusec::rt
