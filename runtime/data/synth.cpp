#include "runtime/data/synth.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "runtime/support/text.h"

namespace fusec::rt {
namespace {

/// Random numbers that are the same on every platform: mt19937_64 is fully specified, the conversions below
/// are ours (std:: distributions are not portable).
class Random {
 public:
  explicit Random(uint64_t seed) : engine_(seed) {}
  uint64_t Next() { return engine_(); }
  double Uniform() { return static_cast<double>(engine_() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
  int64_t Int(int64_t low, int64_t high) {
    return low + static_cast<int64_t>(engine_() % static_cast<uint64_t>(high - low + 1));
  }
  double Normal() {  // Box-Muller
    double u = std::max(Uniform(), 1e-300);
    double v = Uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * M_PI * v);
  }
  bool Chance(double p) { return Uniform() < p; }

 private:
  std::mt19937_64 engine_;
};

constexpr const char* kLetters = "abcdefghijklmnopqrstuvwxyz";

std::string Word(Random& rng, int64_t min_length, int64_t max_length, int letters = 16) {
  std::string word;
  int64_t length = rng.Int(min_length, max_length);
  for (int64_t i = 0; i < length; ++i) word.push_back(kLetters[rng.Int(0, letters - 1)]);
  return word;
}

/// The skill of each source at each family: the probability that a sample is exactly right. Each family has a
/// different best source (0.8), and every source is best at something but weak elsewhere.
constexpr double kSkill[4][6] = {
    // reverse sort  add   upper count replace
    {0.80, 0.30, 0.20, 0.45, 0.30, 0.20},  // alpha
    {0.30, 0.80, 0.30, 0.20, 0.75, 0.30},  // beta
    {0.20, 0.30, 0.80, 0.30, 0.30, 0.75},  // gamma
    {0.45, 0.20, 0.30, 0.80, 0.20, 0.45},  // delta
};

/// One small edit of a text: substitute, drop, duplicate a character, or swap two neighbours.
std::string Edit(std::string text, Random& rng, bool digits) {
  if (text.empty()) return digits ? "0" : "a";
  auto at = static_cast<size_t>(rng.Int(0, static_cast<int64_t>(text.size()) - 1));
  char replacement = digits ? static_cast<char>('0' + rng.Int(0, 9)) : kLetters[rng.Int(0, 7)];
  if (std::isupper(static_cast<unsigned char>(text[at]))) replacement = static_cast<char>(std::toupper(replacement));
  switch (rng.Int(0, 3)) {
    case 0:
      text[at] = replacement;
      break;
    case 1:
      if (text.size() > 1) text.erase(at, 1);
      break;
    case 2:
      text.insert(at, 1, text[at]);
      break;
    default:
      if (at + 1 < text.size()) std::swap(text[at], text[at + 1]);
      break;
  }
  return text;
}

struct Task {
  std::string prompt;
  std::string gold;
  std::string wrong_strategy;  // the answer of a plausible misreading of the task
  bool digits = false;
};

Task MakeTask(const std::string& family, Random& rng) {
  Task task;
  if (family == "reverse") {
    std::string word = Word(rng, 3, 5, 8);
    task = {"reverse: " + word + " =", std::string(word.rbegin(), word.rend()), word};
  } else if (family == "sort") {
    std::string number;
    for (int64_t i = 0, n = rng.Int(3, 5); i < n; ++i) number.push_back(static_cast<char>('0' + rng.Int(0, 9)));
    std::string sorted = number;
    std::sort(sorted.begin(), sorted.end());
    task = {"sort: " + number + " =", sorted, std::string(sorted.rbegin(), sorted.rend()), true};
  } else if (family == "add") {
    int64_t a = rng.Int(10, 99);
    int64_t b = rng.Int(10, 99);
    task = {"add: " + std::to_string(a) + "+" + std::to_string(b) + " =", std::to_string(a + b),
            std::to_string(a) + std::to_string(b), true};
  } else if (family == "upper") {
    std::string word = Word(rng, 3, 5, 8);
    std::string upper = word;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    task = {"upper: " + word + " =", upper, word};
  } else if (family == "count") {
    std::string word = Word(rng, 4, 6, 6);
    char letter = word[static_cast<size_t>(rng.Int(0, static_cast<int64_t>(word.size()) - 1))];
    auto count = std::count(word.begin(), word.end(), letter);
    task = {"count " + std::string(1, letter) + ": " + word + " =", std::to_string(count), std::to_string(word.size()),
            true};
  } else {  // replace
    std::string word = Word(rng, 3, 5, 8);
    char from = word[static_cast<size_t>(rng.Int(0, static_cast<int64_t>(word.size()) - 1))];
    char to = kLetters[rng.Int(16, 25)];
    std::string replaced = word;
    std::replace(replaced.begin(), replaced.end(), from, to);
    task = {"replace " + std::string(1, from) + ">" + std::string(1, to) + ": " + word + " =", replaced, word};
  }
  return task;
}

/// A sample from a source of skill `skill`: right, a near miss (one or two edits) or a misreading. Weaker
/// sources misread more often.
std::string Sample(const Task& task, double skill, Random& rng) {
  if (rng.Chance(skill)) return task.gold;
  double misread = skill >= 0.6 ? 0.05 : 0.25;
  double two_edits = skill >= 0.6 ? 0.15 : 0.3;
  double roll = rng.Uniform();
  if (roll < misread) return task.wrong_strategy;
  std::string text = Edit(task.gold, rng, task.digits);
  if (roll < misread + two_edits) text = Edit(text, rng, task.digits);
  return text == task.gold ? Edit(text, rng, task.digits) : text;
}

double Round4(double x) { return std::round(x * 10000.0) / 10000.0; }

}  // namespace

const std::vector<std::string>& SynthFamilies() {
  static const std::vector<std::string> families = {"reverse", "sort", "add", "upper", "count", "replace"};
  return families;
}

const std::vector<std::string>& SynthSources() {
  static const std::vector<std::string> sources = {"alpha", "beta", "gamma", "delta"};
  return sources;
}

const std::vector<SynthSourceModel>& SynthSourceModels() {
  static const std::vector<SynthSourceModel> sources = {
      {"alpha", {"reverse", "upper"}}, {"beta", {"sort", "count"}}, {"gamma", {"add", "replace"}}};
  return sources;
}

double TrueScore(const std::string& response, const std::string& gold) { return EditSimilarity(response, gold); }

namespace {

/// One sampled response of `source` at `skill` on `task`, with its true quality and noisy reward.
SynthResponse SampleResponse(const Task& task, const std::string& source, double skill, double noise, Random& rng) {
  SynthResponse response;
  response.source = source;
  response.text = Sample(task, skill, rng);
  response.quality = TrueScore(response.text, task.gold);
  response.reward = Round4(response.quality + noise * rng.Normal());
  return response;
}

}  // namespace

std::vector<SynthPrompt> GenerateFusionMini(const SynthOptions& options) {
  Random rng(options.seed * 0x9E3779B97F4A7C15ULL + 1);
  Random target_rng(options.seed * 0x9E3779B97F4A7C15ULL + 2);
  const auto& families = SynthFamilies();
  const auto& sources = SynthSources();
  std::vector<SynthPrompt> prompts;
  for (int64_t k = 0; k < options.prompts; ++k) {
    size_t family = static_cast<size_t>(k) % families.size();
    Task task = MakeTask(families[family], rng);
    SynthPrompt prompt;
    char id[32];
    std::snprintf(id, sizeof id, "fm-%05lld", static_cast<long long>(k));
    prompt.id = id;
    prompt.family = families[family];
    prompt.prompt = task.prompt;
    prompt.gold = task.gold;
    for (size_t s = 0; s < sources.size(); ++s) {
      for (int64_t n = 0; n < options.samples; ++n) {
        prompt.responses.push_back(SampleResponse(task, sources[s], kSkill[s][family], options.noise, rng));
      }
    }
    for (int64_t n = 0; n < options.samples; ++n) {
      prompt.target_samples.push_back(SampleResponse(task, "target", kSynthTargetSkill, options.noise, target_rng));
    }
    prompts.push_back(std::move(prompt));
  }
  return prompts;
}

bool WriteFusionMini(const SynthOptions& options, const std::string& dir, std::string* error) {
  namespace fs = std::filesystem;
  std::vector<SynthPrompt> prompts = GenerateFusionMini(options);
  const size_t sft_end = prompts.size() * 2 / 5;
  const size_t po_end = prompts.size() * 4 / 5;
  std::string sft, po, po_target, eval;
  auto responses_json = [](const std::vector<SynthResponse>& responses, nlohmann::ordered_json& out) {
    for (const SynthResponse& r : responses) out.push_back({{"source", r.source}, {"text", r.text}, {"reward", r.reward}});
  };
  auto line = [](const SynthPrompt& p, const nlohmann::ordered_json& responses) {
    return nlohmann::ordered_json{{"id", p.id}, {"prompt", p.prompt}, {"family", p.family}, {"responses", responses}}.dump() +
           "\n";
  };
  for (size_t k = 0; k < prompts.size(); ++k) {
    const SynthPrompt& p = prompts[k];
    if (k >= po_end) {
      eval +=
          nlohmann::ordered_json{{"id", p.id}, {"prompt", p.prompt}, {"family", p.family}, {"gold", p.gold}}.dump() +
          "\n";
      continue;
    }
    nlohmann::ordered_json responses = nlohmann::ordered_json::array();
    responses_json(p.responses, responses);
    (k < sft_end ? sft : po) += line(p, responses);
    if (k >= sft_end) {
      responses_json(p.target_samples, responses);
      po_target += line(p, responses);
    }
  }
  // The real sources' files: the sampling prompts (with gold, for gold_reward) and each source's training
  // data, from a random stream of its own so that the files above do not depend on them.
  std::string sft_prompts, po_prompts;
  for (size_t k = 0; k < po_end; ++k) {
    const SynthPrompt& p = prompts[k];
    (k < sft_end ? sft_prompts : po_prompts) +=
        nlohmann::ordered_json{{"id", p.id}, {"prompt", p.prompt}, {"family", p.family}, {"gold", p.gold}}.dump() +
        "\n";
  }
  std::vector<std::pair<std::string, std::string>> source_files;
  Random source_rng(options.seed * 0x9E3779B97F4A7C15ULL + 3);
  for (const SynthSourceModel& source : SynthSourceModels()) {
    std::vector<std::string> others;
    for (const std::string& family : SynthFamilies()) {
      if (std::find(source.specialties.begin(), source.specialties.end(), family) == source.specialties.end()) {
        others.push_back(family);
      }
    }
    std::string text;
    for (int64_t k = 0; k < options.source_examples; ++k) {
      const std::vector<std::string>& pool = source_rng.Chance(kSynthSpecialtyShare) ? source.specialties : others;
      const std::string& family = pool[static_cast<size_t>(source_rng.Int(0, static_cast<int64_t>(pool.size()) - 1))];
      Task task = MakeTask(family, source_rng);
      char id[48];
      std::snprintf(id, sizeof id, "fm-%s-%05lld", source.name.c_str(), static_cast<long long>(k));
      nlohmann::ordered_json responses = nlohmann::ordered_json::array();
      responses.push_back({{"source", "gold"}, {"text", task.gold}, {"reward", 1.0}});
      text += nlohmann::ordered_json{{"id", id}, {"prompt", task.prompt}, {"family", family}, {"responses", responses}}
                  .dump() +
              "\n";
    }
    source_files.emplace_back("sources/" + source.name + ".jsonl", std::move(text));
  }
  std::string source_list;
  for (const SynthSourceModel& source : SynthSourceModels()) {
    source_list += (source_list.empty() ? "" : ", ") + source.name + " (" + source.specialties[0] + ", " +
                   source.specialties[1] + ")";
  }

  std::ostringstream readme;
  readme << "# fusion-mini (seed " << options.seed << ")\n\n"
         << "Written by `fusec synth fusion-mini --seed " << options.seed << " --prompts " << options.prompts
         << " --noise " << options.noise << "`. " << prompts.size() << " prompts from six task families ("
         << "reverse, sort, add, upper, count, replace), answered by four simulated sources (alpha, beta, gamma, "
         << "delta) with " << options.samples << " samples each. Each family has its own best source.\n\n"
         << "- `sft.jsonl` (" << sft_end << " prompts), `po.jsonl` (" << po_end - sft_end << "): responses with "
         << "rewards = true score + N(0, " << options.noise << ") noise; the true score is not in these files.\n"
         << "- `po_target.jsonl`: the prompts of `po.jsonl` with " << options.samples << " samples of the target "
         << "itself added (source `target`), for WRPO. They are simulated: a fifth model, right with probability "
         << kSynthTargetSkill << " on every family (about the SFT-trained target's rate), not the target's own "
         << "generations.\n"
         << "- `eval.jsonl` (" << prompts.size() - po_end << "): held-out prompts with their `gold` answer.\n\n"
         << "- For real source models (experiments/demo.fuse): `sft_prompts.jsonl` and `po_prompts.jsonl`, the "
         << "prompts of `sft.jsonl` and `po.jsonl` with their `family` and `gold` answer and no responses (what "
         << "the sources are sampled on; `gold_reward` scores against the gold), and `sources/<name>.jsonl`, the "
         << "training data of each source model: " << options.source_examples << " prompts with their gold answer, "
         << static_cast<int>(kSynthSpecialtyShare * 100) << "% from its two specialties, the rest from the other "
         << "families. Sources: " << source_list << ".\n\n"
         << "True score: 1 - Levenshtein(response, gold) / max(length).\n";
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "sources", ec);
  std::vector<std::pair<std::string, std::string>> files = {{"sft.jsonl", sft},
                                                            {"po.jsonl", po},
                                                            {"po_target.jsonl", po_target},
                                                            {"eval.jsonl", eval},
                                                            {"sft_prompts.jsonl", sft_prompts},
                                                            {"po_prompts.jsonl", po_prompts}};
  files.insert(files.end(), source_files.begin(), source_files.end());
  files.emplace_back("README.md", readme.str());  // last: its presence says the rest was written
  for (const auto& [name, text] : files) {
    if (!WriteWholeFile((fs::path(dir) / name).string(), text)) {
      *error = (fs::path(dir) / name).string() + ": cannot write";
      return false;
    }
  }
  return true;
}

}  // namespace fusec::rt
