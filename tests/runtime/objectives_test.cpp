// Every stdlib objective, compiled from .fuse by the real compiler and evaluated on tensors, against values
// and gradients worked out by hand here (the formulas of the papers, written independently of the .fuse).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "runtime/objectives/loss.h"
#include "tests/runtime/compiled_loss.h"

namespace fusec::rt {
namespace {

torch::Tensor T(std::vector<double> values) { return torch::tensor(values, torch::kDouble); }

double LogSigmoid(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }
double Sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

/// Three pairs with their log-probabilities (policy ones with gradients), lengths and rewards.
struct Pairs {
  std::vector<double> lc = {-12.5, -30.0, -4.0}, lr = {-9.0, -31.5, -6.5};  // policy: chosen, rejected
  std::vector<double> rc = {-13.0, -29.0, -4.5}, rr = {-8.25, -33.0, -6.0};  // reference
  std::vector<double> nc = {7, 20, 3}, nr = {4, 18, 5};                      // lengths
  std::vector<double> w = {0.25, 0.5, 0.25};
  torch::Tensor chosen = T(lc).requires_grad_(true), rejected = T(lr).requires_grad_(true);

  LossBatch Batch(double progress = 0) const {
    LossBatch batch;
    batch.logp = {{"chosen", chosen}, {"rejected", rejected}};
    batch.ref_logp = {{"chosen", T(rc)}, {"rejected", T(rr)}};
    batch.length = {{"chosen", T(nc)}, {"rejected", T(nr)}};
    batch.reward = {{"chosen", T({0.9, 0.7, 0.8})}, {"rejected", T({0.1, 0.3, 0.2})}};
    batch.weight = T(w);
    batch.progress = progress;
    return batch;
  }
};

/// Checks the loss values against `expected(i)`, and the gradient of the weighted sum sum_i w_i * loss_i with
/// respect to logp(chosen) and logp(rejected) against `d_chosen(i)` and `d_rejected(i)` (derivatives of loss_i).
void ExpectPairLoss(const ir::LossGraph& loss, Pairs& pairs, const std::function<double(size_t)>& expected,
                    const std::function<double(size_t)>& d_chosen, const std::function<double(size_t)>& d_rejected,
                    double progress = 0) {
  torch::Tensor values = EvaluateLoss(loss, pairs.Batch(progress));
  ASSERT_EQ(values.size(0), 3);
  (values * T(pairs.w)).sum().backward();
  for (size_t i = 0; i < 3; ++i) {
    auto k = static_cast<int64_t>(i);
    EXPECT_NEAR(values[k].item<double>(), expected(i), 1e-9) << loss.objective << " pair " << i;
    EXPECT_NEAR(pairs.chosen.grad()[k].item<double>(), pairs.w[i] * d_chosen(i), 1e-9) << loss.objective;
    EXPECT_NEAR(pairs.rejected.grad()[k].item<double>(), pairs.w[i] * d_rejected(i), 1e-9) << loss.objective;
  }
}

TEST(Objectives, Dpo) {
  for (bool length_norm : {false, true}) {
    Pairs p;
    double beta = length_norm ? 10.0 : 0.1;
    auto loss = CompiledLoss("", "    objective = dpo(beta: " + std::to_string(beta) +
                                     ", length_norm: " + (length_norm ? "true" : "false") + ")");
    auto nc = [&](size_t i) { return length_norm ? p.nc[i] : 1.0; };
    auto nr = [&](size_t i) { return length_norm ? p.nr[i] : 1.0; };
    auto margin = [&](size_t i) {
      return beta * ((p.lc[i] - p.rc[i]) / nc(i) - (p.lr[i] - p.rr[i]) / nr(i));
    };
    // d/dm -log sigmoid(m) = -(1 - sigmoid(m)); dm/dlc = beta / nc, dm/dlr = -beta / nr.
    ExpectPairLoss(
        loss, p, [&](size_t i) { return -LogSigmoid(margin(i)); },
        [&](size_t i) { return -(1 - Sigmoid(margin(i))) * beta / nc(i); },
        [&](size_t i) { return (1 - Sigmoid(margin(i))) * beta / nr(i); });
  }
}

TEST(Objectives, SimPo) {
  Pairs p;
  auto loss = CompiledLoss("", "    objective = simpo(beta: 2.5, gamma: 1.5)");
  auto margin = [&](size_t i) { return 2.5 * p.lc[i] / p.nc[i] - 2.5 * p.lr[i] / p.nr[i] - 1.5; };
  ExpectPairLoss(
      loss, p, [&](size_t i) { return -LogSigmoid(margin(i)); },
      [&](size_t i) { return -(1 - Sigmoid(margin(i))) * 2.5 / p.nc[i]; },
      [&](size_t i) { return (1 - Sigmoid(margin(i))) * 2.5 / p.nr[i]; });
}

TEST(Objectives, Ipo) {
  Pairs p;
  auto loss = CompiledLoss("", "    objective = ipo(tau: 0.25)");
  auto h = [&](size_t i) { return (p.lc[i] - p.rc[i]) - (p.lr[i] - p.rr[i]) - 1 / (2 * 0.25); };
  ExpectPairLoss(
      loss, p, [&](size_t i) { return h(i) * h(i); }, [&](size_t i) { return 2 * h(i); },
      [&](size_t i) { return -2 * h(i); });
}

TEST(Objectives, ConservativeDpo) {
  Pairs p;
  auto loss = CompiledLoss("", "    objective = cdpo(beta: 0.2, eps: 0.2)");
  auto m = [&](size_t i) { return 0.2 * ((p.lc[i] - p.rc[i]) - (p.lr[i] - p.rr[i])); };
  // d/dm [-(1-e) log s(m) - e log s(-m)] = -(1-e)(1-s(m)) + e s(m)
  auto dm = [&](size_t i) { return -(0.8) * (1 - Sigmoid(m(i))) + 0.2 * Sigmoid(m(i)); };
  ExpectPairLoss(
      loss, p, [&](size_t i) { return -0.8 * LogSigmoid(m(i)) - 0.2 * LogSigmoid(-m(i)); },
      [&](size_t i) { return dm(i) * 0.2; }, [&](size_t i) { return -dm(i) * 0.2; });
}

TEST(Objectives, DpoWithNll) {
  Pairs p;
  auto loss = CompiledLoss("", "    objective = dpo_nll(beta: 0.1, alpha: 0.5)");
  auto m = [&](size_t i) { return 0.1 * ((p.lc[i] - p.rc[i]) - (p.lr[i] - p.rr[i])); };
  ExpectPairLoss(
      loss, p, [&](size_t i) { return -LogSigmoid(m(i)) - 0.5 * p.lc[i] / p.nc[i]; },
      [&](size_t i) { return -(1 - Sigmoid(m(i))) * 0.1 - 0.5 / p.nc[i]; },
      [&](size_t i) { return (1 - Sigmoid(m(i))) * 0.1; });
}

TEST(Objectives, UserDefinedObjectiveNeedsNoCpp) {
  Pairs p;
  auto loss = CompiledLoss("objective hinge(margin: float = 1.0) {\n  loss = relu(margin - (logp(chosen) - logp(rejected)))\n}\n",
                           "    objective = hinge(margin: 4.0)");
  auto h = [&](size_t i) { return 4.0 - (p.lc[i] - p.lr[i]); };
  ExpectPairLoss(
      loss, p, [&](size_t i) { return std::max(0.0, h(i)); }, [&](size_t i) { return h(i) > 0 ? -1.0 : 0.0; },
      [&](size_t i) { return h(i) > 0 ? 1.0 : 0.0; });
}

TEST(Objectives, WeightedNll) {
  for (bool token_mean : {true, false}) {
    // fuse_sft's default objective is nll(token_mean: true); the nll_sum stage sums instead.
    auto loss = CompiledLoss("", "    objective = dpo(beta: 0.1)", "fuse_po", token_mean ? "sft" : "nll_sum");
    std::vector<double> logp = {-12.0, -3.0, -40.0};
    std::vector<double> length = {6, 1, 16};
    std::vector<double> weight = {0.5, 0.3, 0.2};
    torch::Tensor y = T(logp).requires_grad_(true);
    LossBatch batch;
    batch.logp = {{"y", y}};
    batch.length = {{"y", T(length)}};
    batch.weight = T(weight);
    torch::Tensor values = EvaluateLoss(loss, batch);
    (values * T(weight)).sum().backward();
    for (int64_t i = 0; i < 3; ++i) {
      double n = token_mean ? length[static_cast<size_t>(i)] : 1.0;
      EXPECT_NEAR(values[i].item<double>(), -logp[static_cast<size_t>(i)] / n, 1e-12);
      EXPECT_NEAR(y.grad()[i].item<double>(), -weight[static_cast<size_t>(i)] / n, 1e-12);
    }
  }
}

TEST(Objectives, RlooUsesLeaveOneOutBaselinesWithinGroups) {
  auto loss = CompiledLoss("", "    groups = by source\n    objective = rloo(kl: 0.0, token_mean: false)");
  EXPECT_EQ(loss.unit, ir::Unit::GroupOfResponses);
  // Two groups: items 0-2 in group 0, items 3-4 in group 1.
  std::vector<double> logp = {-5, -7, -6, -10, -12};
  std::vector<double> reward = {1.0, 0.0, 0.5, 0.2, 0.8};
  std::vector<int64_t> group = {0, 0, 0, 1, 1};
  torch::Tensor y = T(logp).requires_grad_(true);
  LossBatch batch;
  batch.logp = {{"y", y}};
  batch.reward = {{"y", T(reward)}};
  batch.length = {{"y", T({1, 1, 1, 1, 1})}};
  batch.weight = T({0.6, 0.6, 0.6, 0.4, 0.4});
  batch.group = torch::tensor(group, torch::kLong);
  batch.groups = 2;
  torch::Tensor values = EvaluateLoss(loss, batch);
  ASSERT_EQ(values.size(0), 2);
  // A_j = r_j - mean of the others; loss_g = -sum_j A_j * logp_j.
  std::vector<double> advantage = {1.0 - 0.25, 0.0 - 0.75, 0.5 - 0.5, 0.2 - 0.8, 0.8 - 0.2};
  double g0 = 0;
  double g1 = 0;
  for (size_t j = 0; j < 5; ++j) (group[j] == 0 ? g0 : g1) -= advantage[j] * logp[j];
  EXPECT_NEAR(values[0].item<double>(), g0, 1e-12);
  EXPECT_NEAR(values[1].item<double>(), g1, 1e-12);
  values.sum().backward();
  for (int64_t j = 0; j < 5; ++j) EXPECT_NEAR(y.grad()[j].item<double>(), -advantage[static_cast<size_t>(j)], 1e-12);

  // A group of one has no leave-one-out baseline: an error, not a NaN.
  batch.group = torch::tensor(std::vector<int64_t>{0, 0, 0, 0, 1}, torch::kLong);
  EXPECT_THROW(EvaluateLoss(loss, batch), LossError);
}

TEST(Objectives, WrpoRampsAlphaWithProgress) {
  auto loss = CompiledLoss("", "    pairs = wrpo_triples(\"target\")\n    objective = wrpo(beta: 0.5, alpha_max: 0.2)", "po");
  std::vector<double> ls = {-20}, lc = {-15}, lr = {-18}, rs = {-21}, rc = {-15.5}, rr = {-17};
  for (double progress : {0.0, 0.5, 1.0}) {
    torch::Tensor source = T(ls).requires_grad_(true);
    LossBatch batch;
    batch.logp = {{"source_chosen", source}, {"chosen", T(lc)}, {"rejected", T(lr)}};
    batch.ref_logp = {{"source_chosen", T(rs)}, {"chosen", T(rc)}, {"rejected", T(rr)}};
    batch.weight = T({1.0});
    batch.progress = progress;
    torch::Tensor value = EvaluateLoss(loss, batch);
    double alpha = 0.2 * progress;
    double m = 0.5 * (alpha * (ls[0] - rs[0]) + (1 - alpha) * (lc[0] - rc[0]) - (lr[0] - rr[0]));
    EXPECT_NEAR(value[0].item<double>(), -LogSigmoid(m), 1e-12) << "progress " << progress;
    value.sum().backward();
    EXPECT_NEAR(source.grad()[0].item<double>(), -(1 - Sigmoid(m)) * 0.5 * alpha, 1e-12);
  }
}

TEST(Objectives, WeightInsideTheSigmoid) {
  auto loss = CompiledLoss("", "    objective = dpo_weight_inside(beta: 0.5)");
  // Two prompts: pairs 0-1 in group 0, pair 2 in group 1.
  Pairs p;
  LossBatch batch = p.Batch();
  batch.group = torch::tensor(std::vector<int64_t>{0, 0, 1}, torch::kLong);
  batch.groups = 2;
  torch::Tensor values = EvaluateLoss(loss, batch);
  ASSERT_EQ(values.size(0), 2);
  auto h = [&](size_t i) { return 0.5 * ((p.lc[i] - p.rc[i]) - (p.lr[i] - p.rr[i])); };
  double s0 = p.w[0] * h(0) + p.w[1] * h(1);
  double s1 = p.w[2] * h(2);
  EXPECT_NEAR(values[0].item<double>(), -LogSigmoid(s0), 1e-12);
  EXPECT_NEAR(values[1].item<double>(), -LogSigmoid(s1), 1e-12);
  values.sum().backward();
  EXPECT_NEAR(p.chosen.grad()[0].item<double>(), -(1 - Sigmoid(s0)) * p.w[0] * 0.5, 1e-12);
  EXPECT_NEAR(p.chosen.grad()[2].item<double>(), -(1 - Sigmoid(s1)) * p.w[2] * 0.5, 1e-12);
}

TEST(Objectives, MissingInputsAreErrorsThatNameTheObjective) {
  auto loss = CompiledLoss("", "    objective = dpo(beta: 0.1)");
  LossBatch batch;
  batch.logp = {{"chosen", T({-1.0})}};
  batch.ref_logp = {{"chosen", T({-1.5})}, {"rejected", T({-2.0})}};
  batch.weight = T({1.0});
  try {
    EvaluateLoss(loss, batch);
    FAIL() << "expected a LossError";
  } catch (const LossError& error) {
    EXPECT_NE(std::string(error.what()).find("objective `dpo(beta: 0.1"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("logp(rejected)"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace fusec::rt
