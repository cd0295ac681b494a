// Token sequences with their trained masks in flat storage: all ids end to end, all masks end to end, and the
// offset of each sequence. The storage is either built in memory or a mapped cache file (data/token_cache.h);
// copies share it.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace qsft {

class SequenceSet {
 public:
  SequenceSet();
  // Views of flat arrays that `owner` keeps alive (vectors, a mapping). offsets: size()+1 entries, from 0.
  // trained_tokens: how many mask bytes are 1, counted by the maker (so a mapped mask is not read to count it).
  SequenceSet(std::shared_ptr<const void> owner, std::span<const uint64_t> offsets, std::span<const int32_t> ids,
              std::span<const uint8_t> mask, int64_t trained_tokens);

  size_t size() const { return offsets_.size() - 1; }
  std::span<const int32_t> ids(size_t i) const { return ids_.subspan(offsets_[i], offsets_[i + 1] - offsets_[i]); }
  std::span<const uint8_t> mask(size_t i) const { return mask_.subspan(offsets_[i], offsets_[i + 1] - offsets_[i]); }
  int64_t length(size_t i) const { return int64_t(offsets_[i + 1] - offsets_[i]); }
  int64_t total_tokens() const { return int64_t(ids_.size()); }
  int64_t trained_tokens() const { return trained_tokens_; }  // tokens with mask 1

  std::span<const uint64_t> offsets() const { return offsets_; }
  std::span<const int32_t> flat_ids() const { return ids_; }
  std::span<const uint8_t> flat_mask() const { return mask_; }

 private:
  std::shared_ptr<const void> owner_;
  std::span<const uint64_t> offsets_;
  std::span<const int32_t> ids_;
  std::span<const uint8_t> mask_;
  int64_t trained_tokens_ = 0;
};

class SequenceSetBuilder {
 public:
  SequenceSetBuilder();
  void add(std::span<const int32_t> ids, std::span<const uint8_t> mask);
  void add(const SequenceSet& from, size_t i) { add(from.ids(i), from.mask(i)); }
  size_t size() const { return offsets_.size() - 1; }
  SequenceSet finish();  // the builder is empty afterwards

 private:
  std::vector<uint64_t> offsets_;
  std::vector<int32_t> ids_;
  std::vector<uint8_t> mask_;
  int64_t trained_tokens_ = 0;
};

struct TrainEvalSets {
  SequenceSet train, eval;
};

}  // namespace qsft
