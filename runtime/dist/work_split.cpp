#include "runtime/dist/work_split.h"

#include <torch/types.h>

#include <cstring>

#include "runtime/dist/rank_group.h"

namespace fusec::rt {

bool WorkSplit::Owns(int64_t unit) const { return ranks_ == nullptr || unit % ranks_->size() == ranks_->rank(); }

std::function<bool(int64_t)> WorkSplit::Filter() const {
  return [split = *this](int64_t unit) { return split.Owns(unit); };
}

int64_t WorkSplit::ranks() const { return ranks_ == nullptr ? 1 : ranks_->size(); }

bool WorkSplit::writes() const { return ranks_ == nullptr || ranks_->leader(); }

void WorkSplit::Gather(std::vector<double>& values) const {
  if (ranks_ == nullptr || values.empty()) return;
  torch::Tensor sums = torch::from_blob(values.data(), {static_cast<int64_t>(values.size())}, torch::kDouble);
  ranks_->Sum(sums);  // in place: `sums` is a view of `values`
}

void WorkSplit::Gather(std::vector<int64_t>& values) const {
  if (ranks_ == nullptr || values.empty()) return;
  torch::Tensor sums = torch::from_blob(values.data(), {static_cast<int64_t>(values.size())}, torch::kLong);
  ranks_->Sum(sums);
}

std::vector<std::string> WorkSplit::GatherTexts(const std::string& mine) const {
  if (ranks_ == nullptr) return {mine};
  const auto size = static_cast<size_t>(ranks_->size());
  const auto rank = static_cast<size_t>(ranks_->rank());
  std::vector<int64_t> lengths(size, 0);
  lengths[rank] = static_cast<int64_t>(mine.size());
  Gather(lengths);
  std::vector<int64_t> offsets(size + 1, 0);
  for (size_t r = 0; r < size; ++r) offsets[r + 1] = offsets[r] + lengths[r];
  if (offsets[size] == 0) return std::vector<std::string>(size);
  torch::Tensor bytes = torch::zeros({offsets[size]}, torch::kUInt8);
  std::memcpy(bytes.data_ptr<uint8_t>() + offsets[rank], mine.data(), mine.size());
  ranks_->Sum(bytes);
  std::vector<std::string> texts;
  const char* all = reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>());
  for (size_t r = 0; r < size; ++r) texts.emplace_back(all + offsets[r], static_cast<size_t>(lengths[r]));
  return texts;
}

bool WorkSplit::AnyRank(bool flag) const {
  if (ranks_ == nullptr) return flag;
  std::vector<int64_t> count{flag ? 1 : 0};
  Gather(count);
  return count[0] > 0;
}

void WorkSplit::WaitForEveryRank() const {
  if (ranks_ != nullptr) ranks_->Barrier();
}

}  // namespace fusec::rt
