// Reward models (runtime/model/reward_model.h) on tiny random models of both heads, written by the test
// (config.json, model.safetensors, a tokenizer): scores equal reference_reward.py, an independent reference
// (reference_llama.py's decoder, the heads transcribed from transformers and ArmoRM's modeling_custom.py, each
// conversation alone) to 1e-4, whether scored in one batch, alone or in small batches; ArmoRM's gating
// position equals the upstream token-pattern search on the real Llama-3 tokenizer's rendering; bad model
// directories and bad inputs are errors that name what is wrong.
#include "runtime/model/reward_model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/data/examples.h"
#include "runtime/model/config.h"
#include "runtime/model/llama.h"
#include "runtime/model/safetensors.h"
#include "runtime/support/run_error.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/runtime/model_support.h"
#include "tests/runtime/reward_model_support.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt::testing {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

constexpr double kTolerance = 1e-4;  // against the reference, float32 both

PromptRecord TextPrompt(const std::string& text) {
  PromptRecord record;
  record.id = "p";
  record.prompt = text;
  return record;
}

PromptRecord Messages(std::vector<ChatMessage> messages) {
  PromptRecord record;
  record.id = "m";
  record.messages = std::move(messages);
  return record;
}

/// Conversations of different lengths and shapes: a text prompt, a system turn, several turns, an empty reply.
std::vector<std::pair<PromptRecord, std::string>> Conversations() {
  return {
      {TextPrompt("What is 2+2?"), "4"},
      {Messages({{"system", "You are terse."}, {"user", "Name a colour."}}),
       "Blue, or perhaps a longer answer about the colour of the sky at noon."},
      {Messages({{"user", "Hi"}, {"assistant", "Hello! How can I help?"}, {"user", "Tell me a joke about compilers."}}),
       "Why did the compiler break up with the parser? Too many unresolved references."},
      {TextPrompt("Say nothing."), ""},
      {TextPrompt("Count: one two three four five six seven eight nine ten eleven twelve"), "thirteen"},
  };
}

std::vector<RewardInput> Inputs(const RewardModel& model) {
  std::vector<RewardInput> inputs;
  for (const auto& [record, response] : Conversations()) {
    std::string error;
    auto input = model.Input(record, response, &error);
    EXPECT_TRUE(input) << error;
    if (input) inputs.push_back(std::move(*input));
  }
  return inputs;
}

/// `model`'s scores of `inputs` in one batch, alone and in batches of at most `small_batch` tokens: all equal
/// the reference's to kTolerance, and each other to float32 rounding.
void ExpectScoresEqualReference(RewardModel& model, const std::vector<RewardInput>& inputs,
                                const ReferenceScores& reference, int64_t small_batch) {
  ASSERT_EQ(reference.scores.size(), inputs.size());
  std::vector<std::pair<int64_t, int64_t>> progress;
  const std::vector<double> batch =
      model.Score(inputs, 1 << 14, [&](int64_t done, int64_t total) { progress.emplace_back(done, total); });
  ASSERT_EQ(batch.size(), inputs.size());
  EXPECT_EQ(progress, (std::vector<std::pair<int64_t, int64_t>>{
                          {static_cast<int64_t>(inputs.size()), static_cast<int64_t>(inputs.size())}}));
  progress.clear();
  const std::vector<double> small =
      model.Score(inputs, small_batch, [&](int64_t done, int64_t total) { progress.emplace_back(done, total); });
  EXPECT_GT(progress.size(), 2U) << "batches of " << small_batch << " tokens";
  double lowest = batch[0], highest = batch[0], largest_difference = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_NEAR(batch[i], reference.scores[i], kTolerance) << "conversation " << i << " in one batch";
    largest_difference = std::max(largest_difference, std::abs(batch[i] - reference.scores[i]));
    EXPECT_NEAR(small[i], batch[i], 1e-5) << "conversation " << i << " in small batches";
    const std::vector<double> alone = model.Score({inputs[i]}, 1 << 14);
    EXPECT_NEAR(alone[0], batch[i], 1e-5) << "conversation " << i << " alone";
    lowest = std::min(lowest, batch[i]);
    highest = std::max(highest, batch[i]);
  }
  EXPECT_GT(highest - lowest, 1e-2) << "the conversations' scores should differ";
  // The measured figure, in the XML report (--gtest_output=xml).
  char figure[32];
  std::snprintf(figure, sizeof figure, "%.2g", largest_difference);
  ::testing::Test::RecordProperty("largest_difference_to_reference", figure);
}

TEST(RewardModelTest, ArmoRmScoresAndGatingPositionsEqualTheReference) {
  ScratchDir scratch("reward_armorm");
  const std::string biased = scratch / "armorm";
  Random random(7);
  WriteRewardModel(biased, TinyConfig("LlamaForRewardModelWithGating", TokenizerFiles::Llama3), GatedHead(random),
                   TokenizerFiles::Llama3, 11);
  // The gating network's last layer without its bias (GatingNetwork's `bias=False`), in a sharded checkpoint.
  const std::string unbiased = scratch / "unbiased";
  auto head = GatedHead(random);
  head["gating.layers.2.bias"] = torch::Tensor();
  WriteRewardModel(unbiased, TinyConfig("LlamaForRewardModelWithGating", TokenizerFiles::Llama3), head,
                   TokenizerFiles::Llama3, 12, /*sharded=*/true);
  // The model's own Jinja template (`auto`) and fusec's hand-written `llama3` render alike; both are checked.
  const std::vector<std::pair<std::string, ir::ChatTemplateName>> cases = {{biased, ir::ChatTemplateName::Auto},
                                                                           {biased, ir::ChatTemplateName::Llama3},
                                                                           {unbiased, ir::ChatTemplateName::Auto}};
  for (const auto& [dir, chat] : cases) {
    SCOPED_TRACE(dir + (chat == ir::ChatTemplateName::Auto ? ", chat auto" : ", chat llama3"));
    RewardModel model = RewardModel::Load(dir, chat, TestDevice());
    EXPECT_EQ(model.head(), RewardHead::GatedRegression);
    const std::vector<RewardInput> inputs = Inputs(model);
    ASSERT_EQ(inputs.size(), Conversations().size());
    const ReferenceScores reference = RunReference(dir, inputs);
    // fusec's rule (the prompt's last end-of-turn token) is the upstream pattern search's position.
    EXPECT_EQ(
        [&] {
          std::vector<int64_t> positions;
          for (const RewardInput& input : inputs) positions.push_back(input.gating_position);
          return positions;
        }(),
        reference.gating_positions);
    for (const RewardInput& input : inputs) {
      EXPECT_EQ(input.ids[static_cast<size_t>(input.gating_position)], *model.tokenizer().TokenId("<|eot_id|>"));
    }
    ExpectScoresEqualReference(model, inputs, reference, /*small_batch=*/60);
    // The gate is read where the input says: another position gives another score.
    RewardInput moved = inputs[2];
    moved.gating_position = 3;
    EXPECT_GT(std::abs(model.Score({moved}, 1 << 14)[0] - model.Score({inputs[2]}, 1 << 14)[0]), 1e-3);
  }
}

TEST(RewardModelTest, SequenceClassifierScoresEqualTheReference) {
  for (const char* architecture : {"LlamaForSequenceClassification", "Qwen2ForSequenceClassification"}) {
    SCOPED_TRACE(architecture);
    ScratchDir scratch(std::string("reward_") + architecture);
    const std::string dir = scratch / "model";
    Random random(3);
    Json config = TinyConfig(architecture, TokenizerFiles::Bytes);
    if (std::string(architecture).starts_with("Llama")) {  // Llama-3.1's (Skywork-Reward-Llama-3.1-8B's) rope
      config["rope_scaling"] = {{"rope_type", "llama3"},
                                {"factor", 8.0},
                                {"low_freq_factor", 1.0},
                                {"high_freq_factor", 4.0},
                                {"original_max_position_embeddings", 64}};
    }
    WriteRewardModel(dir, config, ScoreHead(random), TokenizerFiles::Bytes, 5);
    RewardModel model = RewardModel::Load(dir, ir::ChatTemplateName::Auto, TestDevice());
    EXPECT_EQ(model.head(), RewardHead::SequenceClassification);
    const std::vector<RewardInput> inputs = Inputs(model);
    for (const RewardInput& input : inputs) EXPECT_EQ(input.gating_position, -1);
    ExpectScoresEqualReference(model, inputs, RunReference(dir, inputs), /*small_batch=*/120);
  }
}

TEST(RewardModelTest, GatingPositionIsTheLastEndOfTurnOfThePrompt) {
  auto [tokenizer_json, tokenizer_config] = ByteTokenizerFiles();
  std::string error;
  auto tokenizer = Tokenizer::FromJson(tokenizer_json, tokenizer_config, &error);
  ASSERT_TRUE(tokenizer) << error;
  const ChatTemplate chatml = MakeChatTemplate(ChatTemplateKind::ChatMl, *tokenizer);
  const PromptRecord record = Messages({{"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}});
  auto prompt = TokenizePrompt(record, *tokenizer, chatml, &error);
  ASSERT_TRUE(prompt) << error;
  const int64_t position = GatingPosition(*prompt, *tokenizer, chatml);
  // The `<|im_end|>` closing the last user turn, followed only by the generation header.
  EXPECT_EQ((*prompt)[static_cast<size_t>(position)], *tokenizer->TokenId("<|im_end|>"));
  const std::vector<int32_t> rest(prompt->begin() + position + 1, prompt->end());
  EXPECT_EQ(tokenizer->Decode(rest, false), "\n<|im_start|>assistant\n");
  // The plain template's prompt has no end-of-turn token: its last token is read.
  const ChatTemplate plain = MakeChatTemplate(ChatTemplateKind::Plain, *tokenizer);
  auto text = TokenizePrompt(TextPrompt("abc"), *tokenizer, plain, &error);
  ASSERT_TRUE(text) << error;
  EXPECT_EQ(GatingPosition(*text, *tokenizer, plain), static_cast<int64_t>(text->size()) - 1);
  EXPECT_EQ(GatingPosition({}, *tokenizer, plain), -1);
}

/// The ModelDirectory error of loading `dir`; fails the test when it loads.
std::string LoadError(const std::string& dir) {
  try {
    RewardModel::Load(dir, ir::ChatTemplateName::Auto, TestDevice());
  } catch (const RunError& error) {
    EXPECT_EQ(error.kind(), RunErrorKind::ModelDirectory) << error.what();
    return error.what();
  }
  ADD_FAILURE() << dir << " loaded";
  return "";
}

TEST(RewardModelTest, BadModelDirectoriesAreErrorsNamingWhatIsWrong) {
  ScratchDir scratch("reward_bad");
  Random random(1);
  auto gated = [&] { return TinyConfig("LlamaForRewardModelWithGating", TokenizerFiles::Bytes); };
  auto classifier = [&] { return TinyConfig("LlamaForSequenceClassification", TokenizerFiles::Bytes); };
  EXPECT_NE(LoadError(scratch / "absent").find("absent: not a model directory"), std::string::npos);
  {
    WriteRewardModel(scratch / "no_weights", classifier(), ScoreHead(random), TokenizerFiles::Bytes, 1);
    fs::remove(scratch / "no_weights/model.safetensors");
    const std::string error = LoadError(scratch / "no_weights");
    EXPECT_NE(error.find("no model.safetensors or model.safetensors.index.json"), std::string::npos) << error;
  }
  {
    Json config = classifier();
    config["architectures"] = {"LlamaForTokenClassification"};
    WriteRewardModel(scratch / "unknown", config, ScoreHead(random), TokenizerFiles::Bytes, 1);
    const std::string error = LoadError(scratch / "unknown");
    EXPECT_NE(error.find("architecture `LlamaForTokenClassification` is not a supported reward model"),
              std::string::npos)
        << error;
    EXPECT_NE(error.find("LlamaForSequenceClassification"), std::string::npos) << error;
    EXPECT_NE(error.find("LlamaForRewardModelWithGating"), std::string::npos) << error;
  }
  {
    Json config = classifier();
    config["architectures"] = {"LlamaForCausalLM"};
    WriteRewardModel(scratch / "causal", config, ScoreHead(random), TokenizerFiles::Bytes, 1);
    EXPECT_NE(LoadError(scratch / "causal").find("`LlamaForCausalLM` is not a supported reward model"),
              std::string::npos);
  }
  {
    WriteRewardModel(scratch / "no_score", classifier(), {{"score.weight", torch::Tensor()}}, TokenizerFiles::Bytes, 1);
    const std::string error = LoadError(scratch / "no_score");
    EXPECT_NE(error.find("has no tensor `score.weight`"), std::string::npos) << error;
  }
  {
    auto head = GatedHead(random);
    head["reward_transform_matrix"] = torch::Tensor();
    WriteRewardModel(scratch / "no_transform", gated(), head, TokenizerFiles::Bytes, 1);
    const std::string error = LoadError(scratch / "no_transform");
    EXPECT_NE(error.find("has no tensor `reward_transform_matrix`"), std::string::npos) << error;
  }
  {
    auto head = GatedHead(random);
    head["gating.layers.1.weight"] = torch::Tensor();
    WriteRewardModel(scratch / "no_gating_layer", gated(), head, TokenizerFiles::Bytes, 1);
    const std::string error = LoadError(scratch / "no_gating_layer");
    EXPECT_NE(error.find("has no tensor `gating.layers.1.weight`"), std::string::npos) << error;
  }
  {
    auto head = GatedHead(random);
    head["regression_layer.weight"] = random.Normal({5, kHidden}, 0.5);
    WriteRewardModel(scratch / "misshaped", gated(), head, TokenizerFiles::Bytes, 1);
    const std::string error = LoadError(scratch / "misshaped");
    EXPECT_NE(error.find("tensor `regression_layer.weight` has shape [5, 16], but config.json makes it [19, 16]"),
              std::string::npos)
        << error;
  }
  {
    Json config = classifier();
    config["id2label"] = {{"0", "LABEL_0"}, {"1", "LABEL_1"}};
    WriteRewardModel(scratch / "two_labels", config, ScoreHead(random, 2), TokenizerFiles::Bytes, 1);
    const std::string error = LoadError(scratch / "two_labels");
    EXPECT_NE(error.find("LlamaForSequenceClassification has 2 labels"), std::string::npos) << error;
  }
  {
    Json config = classifier();
    config.erase("id2label");  // transformers' default: two labels
    WriteRewardModel(scratch / "default_labels", config, ScoreHead(random), TokenizerFiles::Bytes, 1);
    EXPECT_NE(LoadError(scratch / "default_labels").find("has 2 labels"), std::string::npos);
  }
  {
    Json config = gated();
    config["gating_temperature"] = -1;
    WriteRewardModel(scratch / "temperature", config, GatedHead(random), TokenizerFiles::Bytes, 1);
    EXPECT_NE(LoadError(scratch / "temperature").find("`gating_temperature` must be a positive number, not -1"),
              std::string::npos);
  }
  {
    Json config = gated();
    config["gating_n_hidden"] = 3;  // the checkpoint has two hidden layers: gating.layers.3 is missing
    WriteRewardModel(scratch / "layers", config, GatedHead(random), TokenizerFiles::Bytes, 1);
    const std::string error = LoadError(scratch / "layers");
    EXPECT_NE(error.find("`gating.layers."), std::string::npos) << error;
  }
}

TEST(RewardModelTest, NonFiniteScoresAreAnError) {
  ScratchDir scratch("reward_nonfinite");
  const std::string dir = scratch / "model";
  // Finite weights (checked on load) whose product overflows float32.
  WriteRewardModel(dir, TinyConfig("LlamaForSequenceClassification", TokenizerFiles::Bytes),
                   {{"score.weight", torch::full({1, kHidden}, 3e38)}}, TokenizerFiles::Bytes, 2);
  RewardModel model = RewardModel::Load(dir, ir::ChatTemplateName::Auto, TestDevice());
  const std::vector<RewardInput> inputs = Inputs(model);
  try {
    model.Score(inputs, 1 << 14);
    ADD_FAILURE() << "scored";
  } catch (const RunError& error) {
    EXPECT_EQ(error.kind(), RunErrorKind::NonFiniteModel);
    EXPECT_NE(std::string(error.what()).find("scores are not finite (NaN or Inf) for 5 of 5 conversations"),
              std::string::npos)
        << error.what();
    EXPECT_EQ(error.place(), dir);
  }
}

TEST(RewardModelTest, InputsOutsideTheModelAreErrors) {
  ScratchDir scratch("reward_inputs");
  const std::string dir = scratch / "model";
  Random random(4);
  WriteRewardModel(dir, TinyConfig("LlamaForRewardModelWithGating", TokenizerFiles::Bytes), GatedHead(random),
                   TokenizerFiles::Bytes, 2);
  RewardModel model = RewardModel::Load(dir, ir::ChatTemplateName::Auto, TestDevice());
  auto kind_of = [&](const RewardInput& input, int64_t batch_tokens = 1 << 14) {
    try {
      model.Score({input}, batch_tokens);
    } catch (const RunError& error) {
      return error.kind();
    }
    ADD_FAILURE() << "scored";
    return RunErrorKind::Internal;
  };
  EXPECT_EQ(kind_of(RewardInput{std::vector<int32_t>(257, 65), 3}), RunErrorKind::PositionLimit);
  EXPECT_EQ(kind_of(RewardInput{{65, 300, 66}, 0}), RunErrorKind::Internal);    // outside the vocabulary
  EXPECT_EQ(kind_of(RewardInput{{65, 66, 67}, -1}), RunErrorKind::Internal);    // no gating position
  EXPECT_EQ(kind_of(RewardInput{{65, 66, 67}, 3}), RunErrorKind::Internal);     // past the end
  EXPECT_EQ(kind_of(RewardInput{{}, 0}), RunErrorKind::Internal);               // empty
  EXPECT_EQ(kind_of(RewardInput{{65, 66, 67}, 1}, 0), RunErrorKind::Internal);  // batch_tokens 0
  EXPECT_TRUE(model.Score({}, 1 << 14).empty());
}

TEST(RewardModelTest, TokensOutsideTheEmbeddingAreRefusedByInput) {
  // The byte tokenizer has 260 tokens; an embedding of 258 rows lacks `<|im_start|>` (258) and `<|im_end|>`
  // (259), as ArmoRM's and Skywork's may lack their tokenizers' added pad token. Loading works, a text scored
  // with the plain template (EOS `</s>`) works, a chatml conversation does not.
  ScratchDir scratch("reward_vocab");
  const std::string dir = scratch / "model";
  Random random(6);
  Json config = TinyConfig("LlamaForSequenceClassification", TokenizerFiles::Bytes);
  config["vocab_size"] = 258;
  config["pad_token_id"] = 257;
  WriteRewardModel(dir, config, ScoreHead(random), TokenizerFiles::Bytes, 2);
  Json tokenizer_config = Json::parse(ReadFile(dir + "/tokenizer_config.json"));
  tokenizer_config["eos_token"] = "</s>";  // 257: the plain template's response ends with it
  WriteFile(dir + "/tokenizer_config.json", tokenizer_config.dump(2));
  RewardModel chatml = RewardModel::Load(dir, ir::ChatTemplateName::Chatml, TestDevice());
  std::string error;
  EXPECT_FALSE(chatml.Input(TextPrompt("Hi"), "Hello", &error));
  EXPECT_NE(error.find("the reward model's tokenizer gives token 258 (`<|im_start|>`), outside its `vocab_size` 258"),
            std::string::npos)
      << error;
  RewardModel plain = RewardModel::Load(dir, ir::ChatTemplateName::Plain, TestDevice());
  auto input = plain.Input(TextPrompt("Hi"), "Hello", &error);
  ASSERT_TRUE(input) << error;
  EXPECT_EQ(plain.Score({*input}, 1 << 14).size(), 1U);
}

}  // namespace
}  // namespace fusec::rt::testing
