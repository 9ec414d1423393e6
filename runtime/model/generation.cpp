#include "runtime/model/generation.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <string>

#include "runtime/support/run_error.h"

namespace fusec::rt {
namespace {

constexpr uint64_t kSplitMixIncrement = 0x9E3779B97F4A7C15ULL;

/// SplitMix64's step: one 64-bit output of the state `x`.
uint64_t SplitMix64(uint64_t x) {
  uint64_t z = x + kSplitMixIncrement;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

constexpr uint64_t kFnvOffset = 0xCBF29CE484222325ULL;
constexpr uint64_t kFnvPrime = 0x100000001B3ULL;

void FnvBytes(uint64_t& hash, std::string_view bytes) {
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= kFnvPrime;
  }
}

void FnvWord(uint64_t& hash, uint64_t word) {
  for (int i = 0; i < 8; ++i) {
    hash ^= (word >> (8 * i)) & 0xFF;  // little-endian, whatever the machine's order
    hash *= kFnvPrime;
  }
}

[[noreturn]] void Refuse(const std::string& message) { throw RunError(RunErrorKind::Internal, message); }

}  // namespace

uint64_t StreamSeed(uint64_t seed, std::string_view source, std::string_view prompt_id, int64_t sample_index) {
  uint64_t hash = kFnvOffset;
  FnvWord(hash, seed);
  FnvWord(hash, source.size());
  FnvBytes(hash, source);
  FnvWord(hash, prompt_id.size());
  FnvBytes(hash, prompt_id);
  FnvWord(hash, static_cast<uint64_t>(sample_index));
  return SplitMix64(hash);
}

double StreamUniform(uint64_t stream, int64_t step) {
  // Output `step` of SplitMix64's sequence from the state SplitMix64(stream): not symmetric in the two (a
  // xor of their hashes would give stream 1's step 2 the draw of stream 2's step 1).
  const uint64_t bits = SplitMix64(SplitMix64(stream) + static_cast<uint64_t>(step) * kSplitMixIncrement);
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

namespace {

/// A candidate of top-p: its probability and token id, ordered most likely first, then lower id first.
struct Candidate {
  double weight;
  int32_t token;
  uint32_t index;  // into the kept lists
  bool operator<(const Candidate& other) const {
    return weight != other.weight ? weight > other.weight : token < other.token;
  }
};

/// Which of `weights` (probabilities of the ascending `tokens`) top-p keeps: in the order above, a token stays
/// when the mass of the tokens before it is below `top_p` (the first always stays). The boundary is found by
/// quickselect on the mass rather than by sorting the vocabulary: each round partitions the undecided range
/// around a pivot; if the part before the pivot already reaches top_p the boundary lies in it, else all of it
/// and the pivot stay and the search goes on after them. Expected time linear in the vocabulary; the last few
/// candidates are sorted.
std::vector<bool> Nucleus(const std::vector<double>& weights, const std::vector<int32_t>& tokens, double top_p) {
  std::vector<Candidate> order(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) order[i] = {weights[i], tokens[i], static_cast<uint32_t>(i)};
  size_t lo = 0;
  size_t hi = order.size();
  double before = 0;  // the mass of order[0, lo): every one of them stays
  while (hi - lo > 32) {
    const Candidate pivot = order[lo + (hi - lo) / 2];
    const auto mid = static_cast<size_t>(
        std::partition(order.begin() + static_cast<std::ptrdiff_t>(lo), order.begin() + static_cast<std::ptrdiff_t>(hi),
                       [&](const Candidate& c) { return c < pivot; }) -
        order.begin());
    double ahead = 0;
    for (size_t i = lo; i < mid; ++i) ahead += order[i].weight;
    if (mid > lo && before + ahead >= top_p) {
      hi = mid;  // the boundary is inside [lo, mid); everything after it is dropped
      continue;
    }
    before += ahead;  // [lo, mid) stays, and so does the pivot, the first of the rest
    auto pivot_at = std::find_if(order.begin() + static_cast<std::ptrdiff_t>(mid),
                                 order.begin() + static_cast<std::ptrdiff_t>(hi),
                                 [&](const Candidate& c) { return c.token == pivot.token; });
    std::iter_swap(order.begin() + static_cast<std::ptrdiff_t>(mid), pivot_at);
    before += order[mid].weight;
    lo = mid + 1;
    if (before >= top_p) {
      hi = lo;
      break;
    }
  }
  std::sort(order.begin() + static_cast<std::ptrdiff_t>(lo), order.begin() + static_cast<std::ptrdiff_t>(hi));
  size_t keep = lo;
  while (keep < hi && (keep == 0 || before < top_p)) before += order[keep++].weight;
  std::vector<bool> in(weights.size(), false);
  for (size_t i = 0; i < keep; ++i) in[order[i].index] = true;
  return in;
}

}  // namespace

TokenDistribution NextTokenDistribution(std::span<const float> logits, std::span<const int32_t> seen,
                                        const SamplerSettings& sampler) {
  const auto vocab = static_cast<int64_t>(logits.size());
  std::vector<double> scores(logits.begin(), logits.end());
  // RepetitionPenaltyLogitsProcessor: each seen token once.
  if (sampler.repetition_penalty != 1.0) {
    const double penalty = sampler.repetition_penalty;
    for (int32_t token : seen) {
      if (token < 0 || token >= vocab) continue;
      double& score = scores[static_cast<size_t>(token)];
      score = score < 0 ? score * penalty : score / penalty;
    }
  }
  TokenDistribution out;
  if (sampler.temperature <= 0) {  // greedy: the first of the best
    out.tokens.push_back(static_cast<int32_t>(std::max_element(scores.begin(), scores.end()) - scores.begin()));
    out.probabilities.push_back(1.0);
    return out;
  }
  // TemperatureLogitsWarper.
  if (sampler.temperature != 1.0) {
    for (double& score : scores) score /= sampler.temperature;
  }
  // TopKLogitsWarper: keep every score at least the k-th largest (ties with it stay).
  std::vector<int32_t> kept(static_cast<size_t>(vocab));
  std::iota(kept.begin(), kept.end(), 0);
  if (sampler.top_k > 0 && sampler.top_k < vocab) {
    std::vector<double> sorted = scores;
    std::nth_element(sorted.begin(), sorted.begin() + (sampler.top_k - 1), sorted.end(), std::greater<>());
    const double threshold = sorted[static_cast<size_t>(sampler.top_k - 1)];
    std::erase_if(kept, [&](int32_t t) { return scores[static_cast<size_t>(t)] < threshold; });
  }
  // The softmax of what is left.
  double best = -std::numeric_limits<double>::infinity();
  for (int32_t t : kept) best = std::max(best, scores[static_cast<size_t>(t)]);
  std::vector<double> weights(kept.size());
  double total = 0;
  for (size_t i = 0; i < kept.size(); ++i) {
    weights[i] = std::exp(scores[static_cast<size_t>(kept[i])] - best);
    total += weights[i];
  }
  for (double& w : weights) w /= total;
  // TopPLogitsWarper: most likely first (ties: lower id first); a token stays while the mass before it is
  // below top_p.
  if (sampler.top_p < 1.0) {
    std::vector<bool> in_nucleus = Nucleus(weights, kept, sampler.top_p);
    std::vector<int32_t> nucleus;
    std::vector<double> nucleus_weights;
    double mass = 0;
    for (size_t i = 0; i < kept.size(); ++i) {  // kept is ascending, and so stays the nucleus
      if (!in_nucleus[i]) continue;
      nucleus.push_back(kept[i]);
      nucleus_weights.push_back(weights[i]);
      mass += weights[i];
    }
    for (double& w : nucleus_weights) w /= mass;
    kept = std::move(nucleus);
    weights = std::move(nucleus_weights);
  }
  out.tokens = std::move(kept);
  out.probabilities = std::move(weights);
  return out;
}

int32_t DrawToken(const TokenDistribution& distribution, double uniform) {
  double total = 0;
  for (double p : distribution.probabilities) total += p;
  const double target = uniform * total;
  double cumulative = 0;
  for (size_t i = 0; i < distribution.tokens.size(); ++i) {
    cumulative += distribution.probabilities[i];
    if (cumulative > target) return distribution.tokens[i];
  }
  // Rounding left the target at the very end: the last token of non-zero probability.
  for (size_t i = distribution.tokens.size(); i-- > 0;) {
    if (distribution.probabilities[i] > 0) return distribution.tokens[i];
  }
  return distribution.tokens.back();
}

int64_t GenerationSlots(const std::vector<GenerationRequest>& requests, const GenerationLimits& limits) {
  int64_t longest = 0;
  for (const GenerationRequest& request : requests) longest = std::max<int64_t>(longest, std::ssize(request.prompt));
  const int64_t per_row = std::max<int64_t>(1, longest + limits.max_new_tokens);
  int64_t slots = std::min(limits.token_budget / per_row, limits.max_rows);
  slots = std::min<int64_t>(slots, std::ssize(requests));
  return std::max<int64_t>(slots, 1);
}

namespace {

/// A request running in a slot of the cache.
struct Row {
  size_t request = 0;
  int64_t length = 0;            // cache columns filled (positions 0 .. length - 1)
  int32_t pending = 0;           // the token drawn last, not yet in the cache
  std::vector<int32_t> seen;     // distinct ids of the prompt and the generated tokens, ascending
  Generation generation;

  void See(int32_t token) {
    auto at = std::lower_bound(seen.begin(), seen.end(), token);
    if (at == seen.end() || *at != token) seen.insert(at, token);
  }
};

void CheckRequests(const LlamaForCausalLMImpl& model, const std::vector<GenerationRequest>& requests,
                   const GenerationLimits& limits) {
  const ModelConfig& config = model.config();
  if (limits.max_new_tokens < 1) Refuse("generation needs `max_new_tokens` >= 1, not " + std::to_string(limits.max_new_tokens));
  if (limits.max_rows < 1) Refuse("generation needs `max_rows` >= 1, not " + std::to_string(limits.max_rows));
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto& prompt = requests[i].prompt;
    const std::string which = "generation request " + std::to_string(i);
    if (prompt.empty()) Refuse(which + " has an empty prompt");
    const int64_t needed = std::ssize(prompt) + limits.max_new_tokens;
    if (needed > limits.token_budget) {
      Refuse(which + " needs " + std::to_string(needed) + " cache positions (prompt " + std::to_string(prompt.size()) +
             " + `max_new_tokens` " + std::to_string(limits.max_new_tokens) + "), more than the token budget " +
             std::to_string(limits.token_budget));
    }
    if (needed > config.max_position) {
      Refuse(which + " needs " + std::to_string(needed) + " positions, more than the model's `max_position_embeddings` " +
             std::to_string(config.max_position));
    }
    for (int32_t token : prompt) {
      if (token < 0 || token >= config.vocab_size) {
        Refuse(which + " holds the id " + std::to_string(token) + ", outside the vocabulary of " +
               std::to_string(config.vocab_size));
      }
    }
  }
}

/// The continuous-batching loop over one model and one set of requests.
class ContinuousGenerator {
 public:
  ContinuousGenerator(LlamaForCausalLMImpl& model, const std::vector<GenerationRequest>& requests,
                      const SamplerSettings& sampler, const GenerationLimits& limits, const OnGenerated& on_done)
      : model_(model), requests_(requests), sampler_(sampler), limits_(limits), on_done_(on_done),
        results_(requests.size()) {
    const torch::Tensor weight = model.OutputWeight();
    device_ = weight.device();
    int64_t longest = 0;
    for (const GenerationRequest& request : requests) longest = std::max<int64_t>(longest, std::ssize(request.prompt));
    slots_ = GenerationSlots(requests, limits);
    cache_ = KvCache::Allocate(model.config(), slots_, longest + limits.max_new_tokens, weight.options());
  }

  std::vector<Generation> Run() {
    std::vector<std::optional<Row>> slots(static_cast<size_t>(slots_));
    size_t next_request = 0;
    while (true) {
      // Refill: every free slot takes the next waiting request (which may finish at once, freeing it again).
      for (size_t s = 0; s < slots.size(); ++s) {
        while (!slots[s] && next_request < requests_.size()) {
          slots[s] = Start(next_request++, static_cast<int64_t>(s));
          if (slots[s] && Finished(*slots[s])) Finish(slots[s]);
        }
      }
      // Compact: the running rows move to the front, so a forward reads only rows [0, active).
      int64_t active = 0;
      for (size_t s = 0; s < slots.size(); ++s) {
        if (!slots[s]) continue;
        if (static_cast<int64_t>(s) != active) {
          MoveRow(static_cast<int64_t>(s), active, slots[s]->length);
          slots[static_cast<size_t>(active)] = std::move(slots[s]);
          slots[s].reset();
        }
        ++active;
      }
      if (active == 0) break;
      Step(slots, active);
      for (int64_t r = 0; r < active; ++r) {
        auto& row = slots[static_cast<size_t>(r)];
        if (Finished(*row)) Finish(row);
      }
    }
    return std::move(results_);
  }

 private:
  /// A prompt prefilled alone: its keys and values [1, kv_heads, P, head_dim] a layer, and its last logits.
  struct Prefill {
    std::vector<int32_t> prompt;
    KvCache cache;        // batch 1, capacity P
    torch::Tensor logits;  // [1, V] float32 on the CPU, finite
  };

  /// The prefill of `prompt`: the last one again when the prompt is the same (the samples of one prompt come
  /// one after another), so that n samples of a prompt compute it once. Either way its numbers are those of
  /// the prompt computed alone.
  const Prefill& PrefillOf(const std::vector<int32_t>& prompt) {
    if (last_prefill_ && last_prefill_->prompt == prompt) return *last_prefill_;
    const auto length = std::ssize(prompt);
    Prefill prefill;
    prefill.prompt = prompt;
    prefill.cache = KvCache::Allocate(model_.config(), 1, length, cache_.keys.front().options());
    const torch::Tensor ids =
        torch::tensor(std::vector<int64_t>(prompt.begin(), prompt.end()), torch::kLong).view({1, length}).to(device_);
    const torch::Tensor positions = torch::arange(length, torch::kLong).view({1, length}).to(device_);
    const torch::Tensor hidden = model_.Hidden(ids, positions, /*allowed=*/{}, &prefill.cache);
    const torch::Tensor logits = model_.Logits(hidden.select(1, length - 1));  // [1, V]
    RequireFinite(model_, logits, "logits", "sequences");
    prefill.logits = logits.to(torch::kCPU, torch::kFloat).contiguous();
    last_prefill_ = std::move(prefill);
    return *last_prefill_;
  }

  /// Starts request `index` in slot `slot`: its prompt's prefill, then its first draw; the prompt's keys and
  /// values are copied into the slot only when the row goes on.
  Row Start(size_t index, int64_t slot) {
    const std::vector<int32_t>& prompt = requests_[index].prompt;
    const Prefill& prefill = PrefillOf(prompt);
    Row row;
    row.request = index;
    row.length = std::ssize(prompt);
    for (int32_t token : prompt) row.See(token);
    Draw(prefill.logits, {&row});
    if (Finished(row)) return row;
    for (size_t l = 0; l < cache_.keys.size(); ++l) {
      cache_.keys[l][slot].narrow(1, 0, row.length).copy_(prefill.cache.keys[l][0]);
      cache_.values[l][slot].narrow(1, 0, row.length).copy_(prefill.cache.values[l][0]);
    }
    cache_.positions[slot].narrow(0, 0, row.length).copy_(prefill.cache.positions[0]);
    return row;
  }

  /// One forward of every running row's pending token, then the next draw of each.
  void Step(std::vector<std::optional<Row>>& slots, int64_t active) {
    std::vector<int64_t> tokens(static_cast<size_t>(active));
    std::vector<int64_t> lengths(static_cast<size_t>(active));
    int64_t columns = 0;
    std::vector<Row*> rows;
    for (int64_t r = 0; r < active; ++r) {
      Row& row = *slots[static_cast<size_t>(r)];
      tokens[static_cast<size_t>(r)] = row.pending;
      lengths[static_cast<size_t>(r)] = row.length;
      columns = std::max(columns, row.length + 1);
      rows.push_back(&row);
    }
    const torch::Tensor at = torch::tensor(lengths, torch::kLong).to(device_);  // [B]: columns = positions
    KvCache view;
    view.capacity = cache_.capacity;
    view.length = columns;
    view.row_lengths = at;
    for (size_t l = 0; l < cache_.keys.size(); ++l) {
      view.keys.push_back(cache_.keys[l].narrow(0, 0, active));
      view.values.push_back(cache_.values[l].narrow(0, 0, active));
    }
    view.positions = cache_.positions.narrow(0, 0, active);
    const torch::Tensor allowed =
        (torch::arange(columns, at.options()).unsqueeze(0) <= at.unsqueeze(1)).unsqueeze(1);  // [B, 1, S]
    const torch::Tensor hidden = model_.Hidden(torch::tensor(tokens, torch::kLong).view({active, 1}).to(device_),
                                               at.view({active, 1}), allowed, &view);
    for (Row* row : rows) {
      row->See(row->pending);
      ++row->length;
    }
    const torch::Tensor logits = model_.Logits(hidden.select(1, 0));  // [B, V]
    RequireFinite(model_, logits, "logits", "sequences");
    Draw(logits, rows);
  }

  /// Draws each row's next token from its logits [B, V] (finite), rows in parallel (each row's draw is its own).
  void Draw(const torch::Tensor& logits, const std::vector<Row*>& rows) {
    const torch::Tensor cpu = logits.to(torch::kCPU, torch::kFloat).contiguous();
    const int64_t vocab = cpu.size(1);
    const float* data = cpu.data_ptr<float>();
    std::vector<int32_t> drawn(rows.size());
    at::parallel_for(0, std::ssize(rows), 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const Row& row = *rows[static_cast<size_t>(r)];
        const TokenDistribution distribution =
            NextTokenDistribution({data + r * vocab, static_cast<size_t>(vocab)}, row.seen, sampler_);
        const auto step = std::ssize(row.generation.ids);
        drawn[static_cast<size_t>(r)] = DrawToken(distribution, StreamUniform(requests_[row.request].stream, step));
      }
    });
    for (size_t r = 0; r < rows.size(); ++r) {
      Row& row = *rows[r];
      row.pending = drawn[r];
      row.generation.ids.push_back(drawn[r]);
      const auto& stops = limits_.stop_ids;
      if (std::find(stops.begin(), stops.end(), drawn[r]) != stops.end()) row.generation.stopped = true;
    }
  }

  bool Finished(const Row& row) const {
    return row.generation.stopped || std::ssize(row.generation.ids) >= limits_.max_new_tokens;
  }

  void Finish(std::optional<Row>& slot) {
    Generation& result = results_[slot->request];
    result = std::move(slot->generation);
    if (on_done_) on_done_(slot->request, result);
    slot.reset();
  }

  /// Copies the first `length` columns of slot `from` into slot `to`.
  void MoveRow(int64_t from, int64_t to, int64_t length) {
    for (size_t l = 0; l < cache_.keys.size(); ++l) {
      for (torch::Tensor* tensor : {&cache_.keys[l], &cache_.values[l]}) {
        (*tensor)[to].narrow(1, 0, length).copy_((*tensor)[from].narrow(1, 0, length));
      }
    }
    cache_.positions[to].narrow(0, 0, length).copy_(cache_.positions[from].narrow(0, 0, length));
  }

  LlamaForCausalLMImpl& model_;
  const std::vector<GenerationRequest>& requests_;
  const SamplerSettings& sampler_;
  const GenerationLimits& limits_;
  const OnGenerated& on_done_;
  std::vector<Generation> results_;
  torch::Device device_ = torch::kCPU;
  int64_t slots_ = 1;
  KvCache cache_;
  std::optional<Prefill> last_prefill_;
};

}  // namespace

std::vector<Generation> GenerateContinuous(LlamaForCausalLMImpl& model, const std::vector<GenerationRequest>& requests,
                                           const SamplerSettings& sampler, const GenerationLimits& limits,
                                           const OnGenerated& on_done) {
  if (requests.empty()) return {};
  CheckRequests(model, requests, limits);
  torch::NoGradGuard no_grad;
  return ContinuousGenerator(model, requests, sampler, limits, on_done).Run();
}

}  // namespace fusec::rt
