// Shards of an unfinished sampling step (sample_shards.h).

#include "runtime/exec/sample_shards.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/support/checked_write.h"
#include "runtime/support/run_error.h"
#include "runtime/support/text.h"

namespace fusec::rt {

namespace fs = std::filesystem;

SampleShards::SampleShards(fs::path dir, int64_t prompts) : dir_(std::move(dir)), prompts_(prompts) {
  fs::create_directories(dir_);
}

int64_t SampleShards::BlockSize(int64_t block) const {
  return std::min(kShardPrompts, prompts_ - BlockBegin(block));
}

fs::path SampleShards::Path(int64_t source, int64_t block) const {
  return dir_ / ("source-" + std::to_string(source) + "-block-" + std::to_string(block) + ".jsonl");
}

std::optional<ShardSamples> SampleShards::Read(int64_t source, int64_t block, int64_t n, std::string* problem) const {
  const fs::path path = Path(source, block);
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  auto bytes = ReadWholeFile(path.string());
  if (!bytes) {
    *problem = "cannot read " + path.string();
    return std::nullopt;
  }
  const int64_t begin = BlockBegin(block);
  const int64_t size = BlockSize(block);
  ShardSamples samples(static_cast<size_t>(size), std::vector<SampledText>(static_cast<size_t>(n)));
  std::vector<std::vector<bool>> present(static_cast<size_t>(size), std::vector<bool>(static_cast<size_t>(n)));
  std::istringstream in(*bytes);
  int64_t count = 0;
  for (std::string line; std::getline(in, line);) {
    auto json = nlohmann::json::parse(line, nullptr, false);
    if (json.is_discarded() || !json.is_object() || !json.contains("prompt") || !json.contains("sample") ||
        !json.contains("text") || !json["prompt"].is_number_integer() || !json["sample"].is_number_integer() ||
        !json["text"].is_string()) {
      *problem = path.string() + " has a malformed line";
      return std::nullopt;
    }
    const int64_t prompt = json["prompt"].get<int64_t>() - begin;
    const int64_t sample = json["sample"].get<int64_t>();
    if (prompt < 0 || prompt >= size || sample < 0 || sample >= n || present[prompt][sample]) {
      *problem = path.string() + " does not belong to this block";
      return std::nullopt;
    }
    present[prompt][sample] = true;
    samples[prompt][sample] = {json["text"].get<std::string>(), json.value("tokens", int64_t{0})};
    ++count;
  }
  if (count != size * n) {
    *problem = path.string() + " is incomplete";
    return std::nullopt;
  }
  return samples;
}

void SampleShards::Write(int64_t source, int64_t block, const ShardSamples& samples) const {
  std::string lines;
  const int64_t begin = BlockBegin(block);
  for (size_t p = 0; p < samples.size(); ++p) {
    for (size_t s = 0; s < samples[p].size(); ++s) {
      nlohmann::json line = {{"prompt", begin + static_cast<int64_t>(p)},
                             {"sample", static_cast<int64_t>(s)},
                             {"text", samples[p][s].text},
                             {"tokens", samples[p][s].tokens}};
      lines += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
  }
  std::string error;
  if (!WriteFileAtomically(Path(source, block).string(), lines, &error)) throw RunError(RunErrorKind::FileSystem, error);
}

}  // namespace fusec::rt
