#include "data/sequence_set.h"

#include <algorithm>
#include <stdexcept>

namespace qsft {

namespace {

const uint64_t kZeroOffset = 0;

struct OwnedArrays {
  std::vector<uint64_t> offsets;
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;
};

}  // namespace

SequenceSet::SequenceSet() : offsets_(&kZeroOffset, 1) {}

SequenceSet::SequenceSet(std::shared_ptr<const void> owner, std::span<const uint64_t> offsets,
                         std::span<const int32_t> ids, std::span<const uint8_t> mask, int64_t trained_tokens)
    : owner_(std::move(owner)), offsets_(offsets), ids_(ids), mask_(mask), trained_tokens_(trained_tokens) {
  if (offsets_.empty() || offsets_.front() != 0 || offsets_.back() != ids_.size() || ids_.size() != mask_.size())
    throw std::invalid_argument("SequenceSet: offsets, ids and mask do not agree");
}

SequenceSetBuilder::SequenceSetBuilder() : offsets_{0} {}

void SequenceSetBuilder::add(std::span<const int32_t> ids, std::span<const uint8_t> mask) {
  if (ids.size() != mask.size()) throw std::invalid_argument("SequenceSetBuilder::add: ids and mask differ in length");
  ids_.insert(ids_.end(), ids.begin(), ids.end());
  mask_.insert(mask_.end(), mask.begin(), mask.end());
  trained_tokens_ += std::ranges::count(mask, uint8_t(1));
  offsets_.push_back(ids_.size());
}

SequenceSet SequenceSetBuilder::finish() {
  auto owned = std::make_shared<OwnedArrays>(OwnedArrays{std::move(offsets_), std::move(ids_), std::move(mask_)});
  SequenceSet set(owned, owned->offsets, owned->ids, owned->mask, trained_tokens_);
  offsets_ = {0};
  ids_.clear();
  mask_.clear();
  trained_tokens_ = 0;
  return set;
}

}  // namespace qsft
