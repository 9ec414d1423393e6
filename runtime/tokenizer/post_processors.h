// tokenizer.json's `post_processor`: what is added around the ids of one sequence when special tokens are
// asked for (`add_special_tokens`). TemplateProcessing's `single` template gives the tokens before and after
// the sequence ($A); ByteLevel only trims offsets, which fusec does not keep; Sequence applies its processors
// in order. Pairs of sequences are not encoded by fusec, so `pair` templates are not read.
#pragma once

#include <memory>
#include <vector>

#include "runtime/tokenizer/json_fields.h"

namespace fusec::rt::tok {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  /// `ids` with the processor's tokens added (called only with `add_special_tokens`).
  virtual void Process(std::vector<int32_t>& ids) const = 0;
};

class TemplateProcessing final : public PostProcessor {
 public:
  TemplateProcessing(std::vector<int32_t> prefix, std::vector<int32_t> suffix)
      : prefix_(std::move(prefix)), suffix_(std::move(suffix)) {}
  void Process(std::vector<int32_t>& ids) const override;

 private:
  std::vector<int32_t> prefix_;
  std::vector<int32_t> suffix_;
};

class ByteLevelProcessor final : public PostProcessor {
 public:
  void Process(std::vector<int32_t>&) const override {}
};

class PostProcessorSequence final : public PostProcessor {
 public:
  explicit PostProcessorSequence(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  void Process(std::vector<int32_t>& ids) const override {
    for (const auto& step : steps_) step->Process(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

/// The post-processor `json` at `path`; `vocab_size` bounds the ids it may add. Throws TokenizerJsonError.
std::unique_ptr<PostProcessor> PostProcessorFromJson(const Json& json, const std::string& path, int32_t vocab_size);

}  // namespace fusec::rt::tok
