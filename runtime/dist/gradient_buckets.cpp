#include "runtime/dist/gradient_buckets.h"

#include <torch/torch.h>

namespace fusec::rt {

GradientBuckets::GradientBuckets(std::vector<torch::Tensor> parameters, RankGroup& ranks, int64_t bucket_bytes)
    : parameters_(std::move(parameters)), ranks_(ranks) {
  bucket_of_.assign(parameters_.size(), 0);
  slot_of_.assign(parameters_.size(), 0);
  staged_.assign(parameters_.size(), false);
  // Reverse order: the last layers' gradients come first in backward. A bucket holds one dtype and device.
  int64_t bytes = 0;
  for (size_t k = parameters_.size(); k-- > 0;) {
    const torch::Tensor& parameter = parameters_[k];
    if (!parameter.requires_grad()) continue;
    const int64_t size = parameter.numel() * parameter.element_size();
    const bool fits = !buckets_.empty() && bytes + size <= bucket_bytes &&
                      parameters_[buckets_.back().parameters.front()].dtype() == parameter.dtype() &&
                      parameters_[buckets_.back().parameters.front()].device() == parameter.device();
    if (!fits) {
      buckets_.emplace_back();
      bytes = 0;
    }
    Bucket& bucket = buckets_.back();
    bucket_of_[k] = buckets_.size() - 1;
    slot_of_[k] = bucket.parameters.size();
    bucket.offsets.push_back(bucket.parameters.empty() ? 0 : bucket.offsets.back() + parameters_[bucket.parameters.back()].numel());
    bucket.parameters.push_back(k);
    bytes += size;
  }
  for (Bucket& bucket : buckets_) {
    const torch::Tensor& last = parameters_[bucket.parameters.back()];
    bucket.flat = torch::zeros({bucket.offsets.back() + last.numel()}, last.options().requires_grad(false));
  }
  for (size_t k = 0; k < parameters_.size(); ++k) {
    if (!parameters_[k].requires_grad()) continue;
    hook_ids_.push_back(parameters_[k].register_hook([this, k](const torch::Tensor& grad) { OnGradient(k, grad); }));
  }
}

GradientBuckets::~GradientBuckets() {
  size_t hook = 0;
  for (size_t k = 0; k < parameters_.size(); ++k) {
    if (parameters_[k].requires_grad()) parameters_[k].remove_hook(hook_ids_[hook++]);
  }
}

void GradientBuckets::Stage(size_t parameter, const torch::Tensor& incoming) {
  Bucket& bucket = buckets_[bucket_of_[parameter]];
  const torch::Tensor& weight = parameters_[parameter];
  torch::Tensor slot = bucket.flat.narrow(0, bucket.offsets[slot_of_[parameter]], weight.numel()).view_as(weight);
  torch::NoGradGuard no_grad;
  const torch::Tensor& accumulated = weight.grad();
  if (accumulated.defined() && incoming.defined()) {
    torch::add_out(slot, accumulated, incoming);
  } else if (accumulated.defined()) {
    slot.copy_(accumulated);
  } else if (incoming.defined()) {
    slot.copy_(incoming);
  } else {
    slot.zero_();
  }
  staged_[parameter] = true;
  bucket.ready += 1;
}

void GradientBuckets::OnGradient(size_t parameter, const torch::Tensor& incoming) {
  if (!armed_ || staged_[parameter]) return;
  Stage(parameter, incoming);
  StartReadyBucketsInOrder();
}

void GradientBuckets::StartReadyBucketsInOrder() {
  while (next_to_start_ < buckets_.size() &&
         buckets_[next_to_start_].ready == buckets_[next_to_start_].parameters.size()) {
    buckets_[next_to_start_].started = true;
    ranks_.StartSum(buckets_[next_to_start_].flat);
    ++next_to_start_;
  }
}

void GradientBuckets::Finish() {
  // Which parameters have a gradient on some rank: one that none has keeps none.
  std::vector<float> has_gradient(parameters_.size(), 0.0F);
  for (size_t k = 0; k < parameters_.size(); ++k) {
    if (!parameters_[k].requires_grad()) continue;
    if (parameters_[k].grad().defined() || staged_[k]) has_gradient[k] = 1.0F;
    if (!staged_[k]) Stage(k, torch::Tensor());
  }
  StartReadyBucketsInOrder();
  torch::Tensor any_gradient = torch::tensor(has_gradient);
  ranks_.WaitForStarted();
  ranks_.Max(any_gradient);
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < parameters_.size(); ++k) {
    if (!parameters_[k].requires_grad()) continue;
    staged_[k] = false;
    if (any_gradient[static_cast<int64_t>(k)].item<float>() == 0.0F) continue;
    torch::Tensor& weight = parameters_[k];
    const Bucket& bucket = buckets_[bucket_of_[k]];
    torch::Tensor summed = bucket.flat.narrow(0, bucket.offsets[slot_of_[k]], weight.numel()).view_as(weight);
    if (weight.grad().defined()) {
      weight.mutable_grad().copy_(summed);
    } else {
      weight.mutable_grad() = summed.clone();
    }
  }
  for (Bucket& bucket : buckets_) {
    bucket.ready = 0;
    bucket.started = false;
  }
  next_to_start_ = 0;
  armed_ = false;
}

}  // namespace fusec::rt
