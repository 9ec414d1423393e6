#include "runtime/dist/gradient_buckets.h"

#include <torch/torch.h>

namespace fusec::rt {

GradientBuckets::GradientBuckets(std::vector<torch::Tensor> parameters, RankGroup& ranks, std::vector<int64_t> owners,
                                 int64_t bucket_bytes)
    : parameters_(std::move(parameters)), ranks_(ranks), owners_(std::move(owners)) {
  bucket_of_.assign(parameters_.size(), 0);
  slot_of_.assign(parameters_.size(), 0);
  staged_.assign(parameters_.size(), false);
  had_gradient_.assign(parameters_.size(), false);
  owned_sum_.resize(parameters_.size());
  // Reverse order: the last layers' gradients come first in backward. A bucket holds one dtype and device, and
  // with sums to owners one owner's parameters.
  int64_t bytes = 0;
  for (size_t k = parameters_.size(); k-- > 0;) {
    const torch::Tensor& parameter = parameters_[k];
    if (!parameter.requires_grad()) continue;
    const int64_t size = parameter.numel() * parameter.element_size();
    const int64_t owner = owners_.empty() ? -1 : owners_[k];
    const bool fits = !buckets_.empty() && bytes + size <= bucket_bytes && buckets_.back().owner == owner &&
                      parameters_[buckets_.back().parameters.front()].dtype() == parameter.dtype() &&
                      parameters_[buckets_.back().parameters.front()].device() == parameter.device();
    if (!fits) {
      buckets_.emplace_back().owner = owner;
      bytes = 0;
    }
    Bucket& bucket = buckets_.back();
    bucket_of_[k] = buckets_.size() - 1;
    slot_of_[k] = bucket.parameters.size();
    bucket.offsets.push_back(bucket.elements);
    bucket.parameters.push_back(k);
    bucket.elements += parameter.numel();
    bytes += size;
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

torch::Tensor GradientBuckets::Slot(const Bucket& bucket, size_t parameter) const {
  const torch::Tensor& weight = parameters_[parameter];
  return bucket.flat.narrow(0, bucket.offsets[slot_of_[parameter]], weight.numel()).view_as(weight);
}

void GradientBuckets::Stage(size_t parameter, const torch::Tensor& incoming) {
  Bucket& bucket = buckets_[bucket_of_[parameter]];
  const torch::Tensor& weight = parameters_[parameter];
  if (!bucket.flat.defined()) {  // a buffer while the bucket is filled and summed
    while (sums_every_micro_batch() && next_to_complete_ < next_to_start_ && live_buffers_ >= kBucketBuffers) {
      CompleteOldestBucket();
    }
    live_buffers_ += 1;
    bucket.flat = torch::empty({bucket.elements}, weight.options().requires_grad(false));
  }
  torch::Tensor slot = Slot(bucket, parameter);
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
  had_gradient_[parameter] = had_gradient_[parameter] || accumulated.defined() || incoming.defined();
  staged_[parameter] = true;
  bucket.ready += 1;
}

void GradientBuckets::OnGradient(size_t parameter, const torch::Tensor& incoming) {
  if (!armed_ || staged_[parameter]) return;
  // The parameters staged by earlier hooks have had their `.grad` accumulated since; this one's comes after
  // this hook returns.
  ReleaseStagedGradients();
  Stage(parameter, incoming);
  StartReadyBucketsInOrder();
  to_release_.push_back(parameter);
}

void GradientBuckets::StartReadyBucketsInOrder() {
  while (next_to_start_ < buckets_.size() &&
         buckets_[next_to_start_].ready == buckets_[next_to_start_].parameters.size()) {
    Bucket& bucket = buckets_[next_to_start_];
    if (sums_every_micro_batch()) {
      ranks_.StartSumTo(bucket.flat, bucket.owner);
    } else {
      ranks_.StartSum(bucket.flat);
    }
    ++next_to_start_;
  }
}

void GradientBuckets::CompleteOldestBucket() {
  ranks_.WaitForOldestStarted();
  Bucket& bucket = buckets_[next_to_complete_++];
  if (bucket.owner == ranks_.rank()) {
    torch::NoGradGuard no_grad;
    for (size_t parameter : bucket.parameters) {
      torch::Tensor sum = Slot(bucket, parameter);
      if (owned_sum_[parameter].defined()) {
        owned_sum_[parameter].add_(sum);
      } else {
        owned_sum_[parameter] = sum.clone();
      }
    }
  }
  live_buffers_ -= 1;
  bucket.flat = torch::Tensor();
}

void GradientBuckets::ReleaseStagedGradients() {
  for (size_t parameter : to_release_) parameters_[parameter].mutable_grad().reset();
  to_release_.clear();
}

void GradientBuckets::BeforeBackward(bool last) { armed_ = last || sums_every_micro_batch(); }

void GradientBuckets::AfterBackward() {
  if (!sums_every_micro_batch()) return;
  ReleaseStagedGradients();
  for (const Bucket& bucket : buckets_) {  // in bucket order, so that few buffers are alive at once
    for (size_t parameter : bucket.parameters) {
      if (!staged_[parameter]) Stage(parameter, torch::Tensor());
      parameters_[parameter].mutable_grad().reset();
    }
    StartReadyBucketsInOrder();
  }
  while (next_to_complete_ < next_to_start_) CompleteOldestBucket();
  for (Bucket& bucket : buckets_) bucket.ready = 0;
  staged_.assign(parameters_.size(), false);
  next_to_start_ = next_to_complete_ = 0;
  armed_ = false;
}

void GradientBuckets::Finish() {
  // Which parameters have a gradient on some rank: one that none has keeps none.
  std::vector<float> has_gradient(parameters_.size(), 0.0F);
  if (!sums_every_micro_batch()) {
    ReleaseStagedGradients();
    for (size_t k = 0; k < parameters_.size(); ++k) {
      if (!parameters_[k].requires_grad()) continue;
      if (!staged_[k]) Stage(k, torch::Tensor());
      parameters_[k].mutable_grad().reset();  // its bucket has it
    }
    StartReadyBucketsInOrder();
    ranks_.WaitForStarted();
  }
  for (size_t k = 0; k < parameters_.size(); ++k) has_gradient[k] = had_gradient_[k] ? 1.0F : 0.0F;
  torch::Tensor any_gradient = torch::tensor(has_gradient);
  ranks_.Max(any_gradient);
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < parameters_.size(); ++k) {
    if (!parameters_[k].requires_grad()) continue;
    torch::Tensor& weight = parameters_[k];
    const bool keeps = any_gradient[static_cast<int64_t>(k)].item<float>() != 0.0F;
    if (sums_every_micro_batch()) {
      weight.mutable_grad() = keeps && owners_[k] == ranks_.rank() ? std::move(owned_sum_[k]) : torch::Tensor();
      owned_sum_[k] = torch::Tensor();
      continue;
    }
    staged_[k] = false;
    if (keeps) weight.mutable_grad() = Slot(buckets_[bucket_of_[k]], k);  // a view: the bucket's sum is the gradient
  }
  for (Bucket& bucket : buckets_) {
    bucket.ready = 0;
    if (!sums_every_micro_batch() && bucket.flat.defined()) {  // now the gradients' storage, theirs to release
      live_buffers_ -= 1;
      bucket.flat = torch::Tensor();
    }
  }
  had_gradient_.assign(parameters_.size(), false);
  next_to_start_ = 0;
  armed_ = false;
}

}  // namespace fusec::rt
