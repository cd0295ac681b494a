#include "data/packed_batch.h"

#include <algorithm>
#include <stdexcept>

namespace qsft {

int64_t PackedBatch::num_targets() const {
  return std::count_if(targets.begin(), targets.end(), [](int32_t t) { return t != kIgnoreTarget; });
}

void PackedBatch::append_with_targets(std::span<const int32_t> seq_ids, std::span<const int32_t> seq_targets) {
  if (seq_ids.size() != seq_targets.size()) throw std::invalid_argument("append_with_targets: size mismatch");
  if (cu_seqlens.empty()) cu_seqlens.push_back(0);
  for (size_t t = 0; t < seq_ids.size(); ++t) {
    ids.push_back(seq_ids[t]);
    targets.push_back(seq_targets[t]);
    positions.push_back(int32_t(t));
  }
  cu_seqlens.push_back(int32_t(ids.size()));
  max_seqlen = std::max(max_seqlen, int(seq_ids.size()));
}

void PackedBatch::append(std::span<const int32_t> seq_ids, std::span<const uint8_t> mask) {
  if (seq_ids.size() != mask.size()) throw std::invalid_argument("append: ids and mask differ in length");
  std::vector<int32_t> tgt(seq_ids.size(), kIgnoreTarget);
  for (size_t t = 0; t + 1 < seq_ids.size(); ++t)
    if (mask[t + 1]) tgt[t] = seq_ids[t + 1];
  append_with_targets(seq_ids, tgt);
}

PackedBatch PackedBatch::slice(int s0, int s1) const {
  PackedBatch b;
  for (int s = s0; s < s1; ++s) {
    size_t a = size_t(cu_seqlens[s]), e = size_t(cu_seqlens[s + 1]);
    b.append_with_targets(std::span(ids).subspan(a, e - a), std::span(targets).subspan(a, e - a));
  }
  return b;
}

}  // namespace qsft
