#include "runtime/train/optimizer_shard.h"

#include <torch/torch.h>

#include <cmath>

namespace fusec::rt {
namespace {

/// The broadcasts after a sharded step go in runs of one owner's parameters of at most this many bytes.
constexpr int64_t kBroadcastBytes = 25 * 1024 * 1024;

bool Sharded(ir::Shard shard, RankGroup* ranks) {
  return ranks != nullptr && ranks->size() > 1 && shard != ir::Shard::None;
}

std::vector<torch::Tensor> OwnedParameters(const std::vector<torch::Tensor>& parameters,
                                           const std::vector<int64_t>& owners, RankGroup* ranks) {
  if (owners.empty()) return parameters;
  std::vector<torch::Tensor> owned;
  for (size_t k = 0; k < parameters.size(); ++k) {
    if (owners[k] == ranks->rank()) owned.push_back(parameters[k]);
  }
  return owned;
}

}  // namespace

std::vector<int64_t> PartitionParameters(const std::vector<torch::Tensor>& parameters, int64_t ranks) {
  int64_t total = 0;
  for (const torch::Tensor& parameter : parameters) total += parameter.numel();
  std::vector<int64_t> owners(parameters.size(), 0);
  int64_t before = 0;  // elements ahead of this parameter in backward's order
  for (size_t k = parameters.size(); k-- > 0;) {
    const int64_t middle = before + parameters[k].numel() / 2;  // a parameter goes where its middle falls
    owners[k] = std::min(ranks - 1, middle * ranks / std::max<int64_t>(total, 1));
    before += parameters[k].numel();
  }
  return owners;
}

OptimizerShard::OptimizerShard(LlamaForCausalLMImpl& model, ir::Shard shard, RankGroup* ranks,
                               const torch::optim::AdamWOptions& options)
    : parameters_(model.parameters()),
      ranks_(ranks),
      owners_(Sharded(shard, ranks) ? PartitionParameters(parameters_, ranks->size()) : std::vector<int64_t>{}),
      shards_gradients_(Sharded(shard, ranks) && shard == ir::Shard::Gradients),
      adamw_(OwnedParameters(parameters_, owners_, ranks), options) {}

void OptimizerShard::SetLearningRate(double lr) {
  for (auto& group : adamw_.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

void OptimizerShard::ReleaseGradients() {
  for (torch::Tensor& parameter : parameters_) parameter.mutable_grad().reset();
}

double OptimizerShard::ClipGradients(const std::optional<double>& max_norm) {
  if (!shards_gradients_) {
    if (max_norm) return torch::nn::utils::clip_grad_norm_(parameters_, *max_norm);
    double squares = 0;
    for (const torch::Tensor& parameter : parameters_) {
      if (parameter.grad().defined()) squares += parameter.grad().pow(2).sum().item<double>();
    }
    return std::sqrt(squares);
  }
  // Each rank holds its own parameters' gradients: the squares of its shard, summed over the ranks.
  torch::Tensor squares = torch::zeros({1}, torch::kDouble);
  for (const torch::Tensor& parameter : parameters_) {
    if (parameter.grad().defined()) squares += parameter.grad().norm().to(torch::kDouble).pow(2).cpu();
  }
  ranks_->Sum(squares);
  const double norm = std::sqrt(squares.item<double>());
  if (max_norm) {
    const double coefficient = std::min(1.0, *max_norm / (norm + 1e-6));  // as clip_grad_norm_ scales
    torch::NoGradGuard no_grad;
    for (torch::Tensor& parameter : parameters_) {
      if (parameter.grad().defined()) parameter.mutable_grad().mul_(coefficient);
    }
  }
  return norm;
}

void OptimizerShard::Step() {
  adamw_.step();
  if (!owners_.empty()) BroadcastFromOwners();
}

void OptimizerShard::BroadcastFromOwners() {
  torch::NoGradGuard no_grad;
  size_t end = parameters_.size();  // runs of one owner in backward's order: [begin, end) of the model's order
  while (end > 0) {
    size_t begin = end - 1;
    int64_t bytes = parameters_[begin].numel() * parameters_[begin].element_size();
    while (begin > 0 && owners_[begin - 1] == owners_[end - 1] &&
           parameters_[begin - 1].dtype() == parameters_[end - 1].dtype() &&
           bytes + parameters_[begin - 1].numel() * parameters_[begin - 1].element_size() <= kBroadcastBytes) {
      --begin;
      bytes += parameters_[begin].numel() * parameters_[begin].element_size();
    }
    const int64_t owner = owners_[end - 1];
    std::vector<torch::Tensor> run(parameters_.begin() + static_cast<std::ptrdiff_t>(begin),
                                   parameters_.begin() + static_cast<std::ptrdiff_t>(end));
    std::vector<torch::Tensor> flat_views;
    for (const torch::Tensor& parameter : run) flat_views.push_back(parameter.detach().reshape({-1}));
    torch::Tensor flat = torch::cat(flat_views);  // [elements of the run]
    ranks_->Broadcast(flat, owner);
    if (owner != ranks_->rank()) {
      int64_t offset = 0;
      for (torch::Tensor& parameter : run) {
        parameter.detach().copy_(flat.narrow(0, offset, parameter.numel()).view_as(parameter));
        offset += parameter.numel();
      }
    }
    end = begin;
  }
}

int64_t OptimizerShard::MomentBytes() const {
  int64_t bytes = 0;
  for (const auto& [key, state] : adamw_.state()) {
    const auto& adamw_state = static_cast<const torch::optim::AdamWParamState&>(*state);
    for (const torch::Tensor& moment : {adamw_state.exp_avg(), adamw_state.exp_avg_sq(), adamw_state.max_exp_avg_sq()}) {
      if (moment.defined()) bytes += moment.numel() * moment.element_size();
    }
  }
  return bytes;
}

}  // namespace fusec::rt
