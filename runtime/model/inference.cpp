#include "runtime/model/inference.h"

#include <torch/autograd.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>

#include "runtime/support/run_error.h"
#include "runtime/support/torch_compat.h"

namespace fusec::rt {

void RequireFinite(const LlamaForCausalLMImpl& model, const torch::Tensor& values, const std::string& what,
                   const std::string& unit) {
  if (values.numel() == 0) return;
  const int64_t bad =
      values.isfinite().logical_not().reshape({values.size(0), -1}).any(1).sum().item<int64_t>();
  if (bad == 0) return;
  const std::string& dir = model.source();
  // The directory is the error's place (rendered before the message, or as `note: at DIR` under a span).
  RunError error(RunErrorKind::NonFiniteModel, "the model's " + what + " are not finite (NaN or Inf) for " +
                                                   std::to_string(bad) + " of " + std::to_string(values.size(0)) +
                                                   " " + unit);
  if (!dir.empty()) error.Place(dir);
  throw error.Help("the weights are finite (checked on load): a value of config.json (`rope_theta`, `rms_norm_eps`, "
                   "`rope_scaling`) or a narrow dtype (fp16) overflows; fp32 has the widest range");
}

namespace {

/// The chunked head (ChunkedTokenLogProbs). Forward keeps only the per-token log-normaliser [N]; backward
/// recomputes each chunk's logits, turns them into d(logp)/d(logits) = grad * (onehot(target) - softmax) in
/// place, and multiplies back into the hidden states' and the weight's gradients. With a soft cap c the
/// logits are c * tanh(z / c) of the raw ones z, and backward multiplies by their derivative, 1 - tanh^2.
class ChunkedHeadFunction : public torch::autograd::Function<ChunkedHeadFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& hidden,
                               const torch::Tensor& weight, const torch::Tensor& targets, int64_t chunk,
                               double softcap) {
    // Autocast's choice, made by hand so that backward (outside the autocast scope) repeats it exactly.
    const torch::ScalarType compute = compat::AutocastDtype(hidden.device().type()).value_or(hidden.scalar_type());
    const torch::Tensor compute_weight = weight.to(compute);
    const int64_t tokens = hidden.size(0);
    torch::Tensor logp = torch::empty({tokens}, hidden.options().dtype(torch::kFloat));
    torch::Tensor normaliser = torch::empty({tokens}, hidden.options().dtype(torch::kFloat));
    for (int64_t start = 0; start < tokens; start += chunk) {
      const int64_t length = std::min(chunk, tokens - start);
      torch::Tensor logits = ChunkLogits(hidden.narrow(0, start, length), compute_weight, compute);  // [length, V]
      if (softcap > 0) logits = logits.div_(softcap).tanh_().mul_(softcap);
      torch::Tensor lse = torch::logsumexp(logits, -1);
      normaliser.narrow(0, start, length).copy_(lse);
      logp.narrow(0, start, length).copy_(logits.gather(1, targets.narrow(0, start, length).unsqueeze(1)).squeeze(1) - lse);
    }
    ctx->save_for_backward({hidden, weight, targets, normaliser});
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["softcap"] = softcap;
    ctx->saved_data["compute"] = static_cast<int64_t>(compute);
    return logp;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& hidden = saved[0];
    const torch::Tensor& weight = saved[1];
    const torch::Tensor& targets = saved[2];
    const torch::Tensor& normaliser = saved[3];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const double softcap = ctx->saved_data["softcap"].toDouble();
    const auto compute = static_cast<torch::ScalarType>(ctx->saved_data["compute"].toInt());
    const torch::Tensor grad_logp = grads[0].to(torch::kFloat);  // [N]
    const torch::Tensor compute_weight = weight.to(compute);
    const int64_t tokens = hidden.size(0);
    torch::Tensor grad_hidden = torch::empty_like(hidden);
    torch::Tensor grad_weight = torch::zeros(weight.sizes(), weight.options().dtype(torch::kFloat));
    for (int64_t start = 0; start < tokens; start += chunk) {
      const int64_t length = std::min(chunk, tokens - start);
      torch::Tensor hidden_chunk = hidden.narrow(0, start, length).to(compute);
      torch::Tensor grad_chunk = grad_logp.narrow(0, start, length).unsqueeze(1);  // [length, 1]
      // softmax = exp(logits - lse); d(logp)/d(logits) = onehot - softmax, scaled by the incoming gradient.
      torch::Tensor grad_logits = ChunkLogits(hidden_chunk, compute_weight, compute);
      torch::Tensor capped;  // tanh(z / c), [length, V]
      if (softcap > 0) {
        capped = grad_logits.div_(softcap).tanh_();
        grad_logits = capped * softcap;
      }
      grad_logits.sub_(normaliser.narrow(0, start, length).unsqueeze(1)).exp_().mul_(-grad_chunk);
      grad_logits.scatter_add_(1, targets.narrow(0, start, length).unsqueeze(1), grad_chunk);
      if (softcap > 0) grad_logits.mul_(1 - capped * capped);  // through c * tanh(z / c)
      torch::Tensor grad_compute = grad_logits.to(compute);
      grad_hidden.narrow(0, start, length).copy_(torch::matmul(grad_compute, compute_weight));
      if (compute == torch::kFloat) {
        grad_weight.addmm_(grad_compute.t(), hidden_chunk);  // in place: no [V, H] temporary a chunk
      } else {
        grad_weight.add_(torch::matmul(grad_compute.t(), hidden_chunk).to(torch::kFloat));
      }
    }
    return {grad_hidden, grad_weight.to(weight.scalar_type()), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }

 private:
  /// Logits [length, V] in float32 of hidden states [length, H], the matmul in `compute` (fp32 accumulation).
  static torch::Tensor ChunkLogits(const torch::Tensor& hidden, const torch::Tensor& compute_weight,
                                   torch::ScalarType compute) {
    return torch::matmul(hidden.to(compute), compute_weight.t()).to(torch::kFloat);
  }
};

}  // namespace

int64_t LogProbOptions::ChunkTokens(int64_t vocab) const {
  if (head_chunk > 0) return head_chunk;
  return std::max<int64_t>(16, kHeadChunkValues / std::max<int64_t>(vocab, 1));
}

torch::Tensor ChunkedTokenLogProbs(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                                   int64_t chunk, double softcap) {
  TORCH_CHECK(chunk > 0, "the head's chunk must be positive");
  return ChunkedHeadFunction::apply(hidden, weight, targets, chunk, softcap);
}

torch::Tensor TokenLogProbs(LlamaForCausalLMImpl& model, const torch::Tensor& hidden, const torch::Tensor& targets,
                            const LogProbOptions& options) {
  if (hidden.size(0) == 0) return torch::zeros({0}, hidden.options().dtype(torch::kFloat));
  if (options.chunked_head) {
    return ChunkedTokenLogProbs(hidden, model.OutputWeight(), targets, options.ChunkTokens(model.config().vocab_size),
                                model.config().final_logit_softcapping.value_or(0.0));
  }
  torch::Tensor log_probs = torch::log_softmax(model.Logits(hidden), -1);  // [N, vocab], the naive way (soft-capped)
  return log_probs.gather(1, targets.unsqueeze(1)).squeeze(1);
}

namespace {

/// Scored positions of a batch: the flattened row of each scored token's predecessor, the token, and the
/// response it belongs to.
struct ScoredRows {
  std::vector<int64_t> rows, targets, owner;

  void Add(int64_t row, int32_t target, int64_t response) {
    rows.push_back(row);
    targets.push_back(target);
    owner.push_back(response);
  }
};

torch::Tensor LongTensor(const std::vector<int64_t>& values, torch::Device device) {
  return torch::tensor(values, torch::kLong).to(device);
}

/// Sums the head's log-probabilities of `scored` over their responses: [responses] float32.
torch::Tensor SumByResponse(LlamaForCausalLMImpl& model, const torch::Tensor& hidden, const ScoredRows& scored,
                            int64_t responses, const LogProbOptions& options) {
  const torch::Device device = hidden.device();
  torch::Tensor logp = TokenLogProbs(model, hidden.index_select(0, LongTensor(scored.rows, device)),
                                     LongTensor(scored.targets, device), options);
  return torch::zeros({responses}, logp.options()).index_add(0, LongTensor(scored.owner, device), logp);
}

/// A sequence whose response part is scored: the tokens after the first `prompt_length`.
struct ScoredSequence {
  size_t prompt_length = 0;
  std::vector<int32_t> ids;
};

/// Summed log-probability of the response part of each sequence, in one right-padded batch (the unpacked
/// path): [N] float32 on the model's device; `scored_tokens` receives how many tokens of each were scored.
torch::Tensor SequenceLogProbs(LlamaForCausalLMImpl& model, const std::vector<ScoredSequence>& sequences,
                              std::vector<int64_t>* scored_tokens, const LogProbOptions& options) {
  const torch::Device device = model.OutputWeight().device();
  const auto batch = static_cast<int64_t>(sequences.size());
  int64_t width = 1;
  for (const ScoredSequence& sequence : sequences) width = std::max<int64_t>(width, static_cast<int64_t>(sequence.ids.size()));
  // Right-padded, so causal attention alone keeps pads out of every real position.
  std::vector<int64_t> ids(static_cast<size_t>(batch * width), 0);
  ScoredRows scored;
  if (scored_tokens != nullptr) scored_tokens->assign(static_cast<size_t>(batch), 0);
  for (int64_t b = 0; b < batch; ++b) {
    const ScoredSequence& sequence = sequences[static_cast<size_t>(b)];
    std::copy(sequence.ids.begin(), sequence.ids.end(), ids.begin() + b * width);
    // A response token at position 0 has nothing before it to be predicted from.
    for (size_t t = std::max<size_t>(sequence.prompt_length, 1); t < sequence.ids.size(); ++t) {
      scored.Add(b * width + static_cast<int64_t>(t) - 1, sequence.ids[t], b);
      if (scored_tokens != nullptr) ++(*scored_tokens)[static_cast<size_t>(b)];
    }
  }
  torch::Tensor input = LongTensor(ids, device).view({batch, width});
  torch::Tensor positions = torch::arange(width, torch::TensorOptions().dtype(torch::kLong).device(device))
                                .unsqueeze(0)
                                .expand({batch, width});
  torch::Tensor hidden = model.Hidden(input, positions, /*allowed=*/{}).reshape({batch * width, -1});
  return SumByResponse(model, hidden, scored, batch, options);
}

}  // namespace

int64_t ComputedTokens(const PromptResponses& group, const LogProbOptions& options) {
  int64_t tokens = 0;
  for (std::span<const int32_t> response : group.responses) tokens += static_cast<int64_t>(response.size());
  const auto prompt = static_cast<int64_t>(group.prompt.size());
  return tokens + (options.pack && options.share_prompts ? prompt : prompt * static_cast<int64_t>(group.responses.size()));
}

torch::Tensor ResponseLogProbs(LlamaForCausalLMImpl& model, const std::vector<PromptResponses>& groups,
                               const LogProbOptions& options, std::vector<int64_t>* scored_tokens) {
  if (!options.pack) {  // the usual way: one right-padded row per response, its prompt repeated
    std::vector<ScoredSequence> sequences;
    for (const PromptResponses& group : groups) {
      for (std::span<const int32_t> response : group.responses) {
        std::vector<int32_t> ids(group.prompt.begin(), group.prompt.end());
        ids.insert(ids.end(), response.begin(), response.end());
        sequences.push_back({group.prompt.size(), std::move(ids)});
      }
    }
    return SequenceLogProbs(model, sequences, scored_tokens, options);
  }
  // One flat row. Shared: [prompt][response 1][response 2]... per group, each response a segment whose
  // context is the prompt and whose positions continue the prompt's. Not shared: [prompt + response] each.
  const torch::Device device = model.OutputWeight().device();
  PackedLayout layout;
  std::vector<int64_t> ids, positions;
  ScoredRows scored;
  int64_t response_index = 0;
  auto add_segment = [&](std::span<const int32_t> tokens, int64_t first_position, int64_t context) {
    layout.segments.push_back({static_cast<int64_t>(ids.size()), static_cast<int64_t>(tokens.size()), context});
    for (size_t t = 0; t < tokens.size(); ++t) {
      ids.push_back(tokens[t]);
      positions.push_back(first_position + static_cast<int64_t>(t));
    }
  };
  for (const PromptResponses& group : groups) {
    const auto prompt_length = static_cast<int64_t>(group.prompt.size());
    const bool shared = options.share_prompts && prompt_length > 0;
    const int64_t prompt_begin = static_cast<int64_t>(ids.size());
    const auto prompt_segment = static_cast<int64_t>(layout.segments.size());
    if (shared) add_segment(group.prompt, 0, -1);
    for (std::span<const int32_t> response : group.responses) {
      const auto length = static_cast<int64_t>(response.size());
      if (length > 0) {
        if (shared) {
          add_segment(response, prompt_length, prompt_segment);
        } else {
          std::vector<int32_t> sequence(group.prompt.begin(), group.prompt.end());
          sequence.insert(sequence.end(), response.begin(), response.end());
          add_segment(sequence, 0, -1);
        }
        const int64_t first_row = static_cast<int64_t>(ids.size()) - length;  // response token 0's row
        // The row that predicts response token 0: the prompt's last token, shared or just before.
        const int64_t before_first = shared ? prompt_begin + prompt_length - 1 : first_row - 1;
        for (int64_t t = prompt_length == 0 ? 1 : 0; t < length; ++t) {  // token 0 of no prompt: unpredictable
          scored.Add(t == 0 ? before_first : first_row + t - 1, response[static_cast<size_t>(t)], response_index);
        }
      }
      ++response_index;
    }
  }
  if (scored_tokens != nullptr) {
    scored_tokens->assign(static_cast<size_t>(response_index), 0);
    for (int64_t owner : scored.owner) ++(*scored_tokens)[static_cast<size_t>(owner)];
  }
  if (ids.empty()) {
    return torch::zeros({response_index}, torch::TensorOptions().dtype(torch::kFloat).device(device));
  }
  torch::Tensor hidden = model.HiddenPacked(LongTensor(ids, device).view({1, -1}), LongTensor(positions, device).view({1, -1}),
                                            layout)
                             .squeeze(0);
  return SumByResponse(model, hidden, scored, response_index, options);
}

std::vector<std::vector<ResponseScore>> ScoreResponses(LlamaForCausalLMImpl& model,
                                                       const std::vector<PromptResponses>& groups,
                                                       int64_t max_batch_tokens, const LogProbOptions& options,
                                                       const std::function<void(int64_t, int64_t)>& progress,
                                                       const BatchFilter& computes_batch) {
  torch::NoGradGuard no_grad;
  std::vector<std::vector<ResponseScore>> scores(groups.size());
  int64_t total = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    scores[g].resize(groups[g].responses.size());
    total += static_cast<int64_t>(groups[g].responses.size());
  }
  int64_t done = 0;
  std::vector<int64_t> group_tokens;
  for (const PromptResponses& group : groups) group_tokens.push_back(ComputedTokens(group, options));
  for (size_t begin = 0, batch_index = 0; begin < groups.size(); ++batch_index) {
    int64_t tokens = group_tokens[begin];
    size_t end = begin + 1;
    while (end < groups.size() && tokens + group_tokens[end] <= max_batch_tokens) tokens += group_tokens[end++];
    if (computes_batch && !computes_batch(static_cast<int64_t>(batch_index))) {
      for (size_t g = begin; g < end; ++g) done += static_cast<int64_t>(scores[g].size());
      begin = end;
      continue;
    }
    std::vector<PromptResponses> batch(groups.begin() + static_cast<std::ptrdiff_t>(begin),
                                       groups.begin() + static_cast<std::ptrdiff_t>(end));
    std::vector<int64_t> counts;
    torch::Tensor sums = ResponseLogProbs(model, batch, options, &counts).to(torch::kDouble).cpu();
    RequireFinite(model, sums, "log-probabilities", "responses");
    size_t k = 0;
    for (size_t g = begin; g < end; ++g) {
      for (ResponseScore& score : scores[g]) {
        score = {sums[static_cast<int64_t>(k)].item<double>(), counts[k]};
        ++k;
      }
    }
    done += static_cast<int64_t>(k);
    if (progress) progress(done, total);
    begin = end;
  }
  return scores;
}

std::vector<std::vector<ResponseScore>> ScoreResponses(LlamaForCausalLMImpl& model,
                                                       const std::vector<TokenizedPrompt>& prompts,
                                                       int64_t max_batch_tokens,
                                                       const std::function<void(int64_t, int64_t)>& progress,
                                                       const LogProbOptions& options,
                                                       const BatchFilter& computes_batch) {
  std::vector<PromptResponses> groups;
  for (const TokenizedPrompt& prompt : prompts) {
    PromptResponses& group = groups.emplace_back();
    group.prompt = prompt.prompt_ids;
    for (const TokenizedResponse& response : prompt.responses) group.responses.emplace_back(response.ids);
  }
  return ScoreResponses(model, groups, max_batch_tokens, options, progress, computes_batch);
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
    RequireFinite(model, logits, "logits", "sequences");
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
