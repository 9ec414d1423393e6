#include "runtime/model/inference.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>

namespace fusec::rt {

torch::Tensor TokenLogProbs(LlamaForCausalLMImpl& model, const torch::Tensor& hidden, const torch::Tensor& targets,
                            int64_t chunk) {
  std::vector<torch::Tensor> pieces;
  for (int64_t start = 0; start < hidden.size(0); start += chunk) {
    int64_t length = std::min(chunk, hidden.size(0) - start);
    torch::Tensor logits = model.Logits(hidden.narrow(0, start, length));  // [length, vocab] float32
    torch::Tensor log_probs = torch::log_softmax(logits, -1);
    pieces.push_back(log_probs.gather(1, targets.narrow(0, start, length).unsqueeze(1)).squeeze(1));
  }
  if (pieces.empty()) return torch::zeros({0}, hidden.options().dtype(torch::kFloat));
  return torch::cat(pieces);
}

torch::Tensor SequenceLogProbs(LlamaForCausalLMImpl& model, const std::vector<ScoredSequence>& sequences,
                              std::vector<int64_t>* scored_tokens) {
  const torch::Device device = model.OutputWeight().device();
  const auto batch = static_cast<int64_t>(sequences.size());
  int64_t width = 1;
  for (const ScoredSequence& sequence : sequences) width = std::max<int64_t>(width, static_cast<int64_t>(sequence.ids.size()));
  // Right-padded, so causal attention alone keeps pads out of every real position.
  std::vector<int64_t> ids(static_cast<size_t>(batch * width), 0);
  std::vector<int64_t> rows;     // flattened index of each scored position's predecessor
  std::vector<int64_t> targets;  // the response token it predicts
  std::vector<int64_t> owner;    // which sequence
  if (scored_tokens != nullptr) scored_tokens->assign(static_cast<size_t>(batch), 0);
  for (int64_t b = 0; b < batch; ++b) {
    const ScoredSequence& sequence = sequences[static_cast<size_t>(b)];
    std::copy(sequence.ids.begin(), sequence.ids.end(), ids.begin() + b * width);
    // A response token at position 0 has nothing before it to be predicted from.
    for (size_t t = std::max<size_t>(sequence.prompt_length, 1); t < sequence.ids.size(); ++t) {
      rows.push_back(b * width + static_cast<int64_t>(t) - 1);
      targets.push_back(sequence.ids[t]);
      owner.push_back(b);
      if (scored_tokens != nullptr) ++(*scored_tokens)[static_cast<size_t>(b)];
    }
  }
  auto long_tensor = [&](const std::vector<int64_t>& values) { return torch::tensor(values, torch::kLong).to(device); };
  torch::Tensor input = long_tensor(ids).view({batch, width});
  torch::Tensor positions = torch::arange(width, torch::TensorOptions().dtype(torch::kLong).device(device))
                                .unsqueeze(0)
                                .expand({batch, width});
  torch::Tensor hidden = model.Hidden(input, positions, /*allowed=*/{}).reshape({batch * width, -1});
  torch::Tensor logp = TokenLogProbs(model, hidden.index_select(0, long_tensor(rows)), long_tensor(targets));
  return torch::zeros({batch}, logp.options()).index_add(0, long_tensor(owner), logp);
}

std::vector<std::vector<ResponseScore>> ScoreResponses(LlamaForCausalLMImpl& model,
                                                       const std::vector<TokenizedPrompt>& prompts,
                                                       int64_t max_batch_tokens,
                                                       const std::function<void(int64_t, int64_t)>& progress) {
  torch::NoGradGuard no_grad;
  std::vector<std::vector<ResponseScore>> scores(prompts.size());
  struct Item {
    size_t prompt;
    size_t response;
    int64_t length;
  };
  std::vector<Item> items;
  for (size_t p = 0; p < prompts.size(); ++p) {
    scores[p].resize(prompts[p].responses.size());
    for (size_t r = 0; r < prompts[p].responses.size(); ++r) {
      items.push_back({p, r, static_cast<int64_t>(prompts[p].prompt_ids.size() + prompts[p].responses[r].ids.size())});
    }
  }
  // Longest first, so a batch holds sequences of similar length and padding stays small.
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.length > b.length; });
  int64_t done = 0;
  for (size_t begin = 0; begin < items.size();) {
    const int64_t width = std::max<int64_t>(items[begin].length, 1);
    size_t end = begin + 1;
    while (end < items.size() && static_cast<int64_t>(end - begin + 1) * width <= max_batch_tokens) ++end;
    std::vector<ScoredSequence> sequences;
    for (size_t i = begin; i < end; ++i) {
      const TokenizedPrompt& prompt = prompts[items[i].prompt];
      sequences.push_back({prompt.prompt_ids.size(), prompt.Sequence(items[i].response)});
    }
    std::vector<int64_t> counts;
    torch::Tensor sums = SequenceLogProbs(model, sequences, &counts).to(torch::kDouble).cpu();
    for (size_t i = begin; i < end; ++i) {
      scores[items[i].prompt][items[i].response] = {sums[static_cast<int64_t>(i - begin)].item<double>(), counts[i - begin]};
    }
    done += static_cast<int64_t>(end - begin);
    if (progress) progress(done, static_cast<int64_t>(items.size()));
    begin = end;
  }
  return scores;
}

namespace {

/// The next token of each row from its logits [B, vocab] (float32): argmax, or a sample at `temperature`
/// from the smallest set of tokens whose probability reaches `top_p`. Sampling runs on the CPU with one
/// generator a row, so results do not depend on the device.
std::vector<int64_t> NextTokens(const torch::Tensor& logits, const SamplingOptions& options,
                                std::vector<at::Generator>& generators) {
  if (options.temperature <= 0) {
    torch::Tensor best = logits.argmax(-1).cpu();
    return std::vector<int64_t>(best.data_ptr<int64_t>(), best.data_ptr<int64_t>() + best.numel());
  }
  torch::Tensor probs = torch::softmax(logits.cpu().to(torch::kFloat) / options.temperature, -1);
  std::vector<int64_t> next;
  for (int64_t b = 0; b < probs.size(0); ++b) {
    torch::Tensor row = probs[b];
    if (options.top_p < 1.0) {
      auto [sorted, order] = row.sort(/*dim=*/-1, /*descending=*/true);
      torch::Tensor before = sorted.cumsum(-1) - sorted;  // probability mass of the better tokens
      sorted.masked_fill_(before > options.top_p, 0.0);  // keeps at least the best token
      row = torch::zeros_like(row).scatter_(0, order, sorted);
    }
    next.push_back(torch::multinomial(row, 1, /*replacement=*/false, generators[static_cast<size_t>(b)]).item<int64_t>());
  }
  return next;
}

}  // namespace

std::vector<Generation> Generate(LlamaForCausalLMImpl& model, const std::vector<std::vector<int32_t>>& prompts,
                                 const SamplingOptions& options) {
  torch::NoGradGuard no_grad;
  std::vector<Generation> results(prompts.size());
  if (prompts.empty()) return results;
  const torch::Tensor weight = model.OutputWeight();
  const torch::Device device = weight.device();
  const auto batch = static_cast<int64_t>(prompts.size());
  int64_t longest = 1;
  for (const auto& prompt : prompts) longest = std::max<int64_t>(longest, static_cast<int64_t>(prompt.size()));
  const int64_t capacity = longest + options.max_new_tokens;

  // Left padding: row b's prompt ends at column `longest`; its first `pad` columns are masked keys.
  std::vector<int64_t> ids(static_cast<size_t>(batch * longest), 0);
  std::vector<int64_t> positions(static_cast<size_t>(batch * longest), 0);
  std::vector<uint8_t> valid(static_cast<size_t>(batch * capacity), 1);
  std::vector<int64_t> next_position(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) {
    const auto& prompt = prompts[static_cast<size_t>(b)];
    const int64_t pad = longest - static_cast<int64_t>(prompt.size());
    for (int64_t t = 0; t < longest; ++t) {
      const size_t at = static_cast<size_t>(b * longest + t);
      if (t < pad) {
        valid[static_cast<size_t>(b * capacity + t)] = 0;
      } else {
        ids[at] = prompt[static_cast<size_t>(t - pad)];
        positions[at] = t - pad;
      }
    }
    next_position[static_cast<size_t>(b)] = static_cast<int64_t>(prompt.size());
  }
  auto on_device = [&](const torch::Tensor& t) { return t.to(device); };
  torch::Tensor valid_keys =
      on_device(torch::tensor(std::vector<int64_t>(valid.begin(), valid.end()), torch::kLong).view({batch, capacity}).to(torch::kBool));
  torch::Tensor causal = torch::ones({longest, longest}, torch::kBool).tril().to(device);
  torch::Tensor self = torch::eye(longest, torch::TensorOptions().dtype(torch::kBool)).to(device);
  // Pad queries see themselves only, so no attention row is empty (an empty softmax row would be NaN).
  torch::Tensor allowed = (causal.unsqueeze(0) & valid_keys.narrow(1, 0, longest).unsqueeze(1)) | self.unsqueeze(0);

  KvCache cache = KvCache::Allocate(model.config(), batch, capacity, weight.options());
  torch::Tensor hidden = model.Hidden(on_device(torch::tensor(ids, torch::kLong).view({batch, longest})),
                                      on_device(torch::tensor(positions, torch::kLong).view({batch, longest})), allowed,
                                      &cache);
  torch::Tensor logits = model.Logits(hidden.select(1, longest - 1));  // [B, vocab]

  std::vector<at::Generator> generators;
  for (int64_t b = 0; b < batch; ++b) {
    generators.push_back(at::detail::createCPUGenerator(options.seed * 1000003ULL + static_cast<uint64_t>(b)));
  }
  std::vector<bool> finished(static_cast<size_t>(batch), false);
  int64_t remaining = batch;
  for (int64_t step = 0; step < options.max_new_tokens && remaining > 0; ++step) {
    std::vector<int64_t> next = NextTokens(logits, options, generators);
    for (int64_t b = 0; b < batch; ++b) {
      if (finished[static_cast<size_t>(b)]) continue;
      auto token = static_cast<int32_t>(next[static_cast<size_t>(b)]);
      Generation& result = results[static_cast<size_t>(b)];
      result.ids.push_back(token);
      if (std::find(options.stop_ids.begin(), options.stop_ids.end(), token) != options.stop_ids.end()) {
        result.stopped = true;
        finished[static_cast<size_t>(b)] = true;
        --remaining;
      }
    }
    if (remaining == 0 || step + 1 == options.max_new_tokens) break;
    std::vector<int64_t> step_positions(static_cast<size_t>(batch));
    for (int64_t b = 0; b < batch; ++b) step_positions[static_cast<size_t>(b)] = next_position[static_cast<size_t>(b)]++;
    torch::Tensor step_allowed = valid_keys.narrow(1, 0, cache.length + 1).unsqueeze(1);  // [B, 1, S]
    hidden = model.Hidden(on_device(torch::tensor(next, torch::kLong).view({batch, 1})),
                          on_device(torch::tensor(step_positions, torch::kLong).view({batch, 1})), step_allowed, &cache);
    logits = model.Logits(hidden.select(1, 0));
  }
  return results;
}

}  // namespace fusec::rt
