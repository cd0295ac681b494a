#include "engine/model/device_batch.h"

#include <string>

#include "data/packed_batch.h"

namespace qsft {

void DeviceBatch::carve(Arena& a, int64_t max_tokens) {
  max_tokens_ = max_tokens;
  ids_ = a.take(DType::I32, {max_tokens});
  targets_ = a.take(DType::I32, {max_tokens});
  positions_ = a.take(DType::I32, {max_tokens});
  cu_seqlens_ = a.take(DType::I32, {max_tokens + 1});
}

void DeviceBatch::upload(Ops& ops, const TokenBatchView& b, int64_t vocab) {
  const int64_t T = b.num_tokens();
  QSFT_CHECK(T > 0 && T <= max_tokens_,
             "micro-batch of " + std::to_string(T) + " tokens exceeds the planned " + std::to_string(max_tokens_));
  QSFT_CHECK(int64_t(b.targets.size()) == T && int64_t(b.positions.size()) == T && b.num_seqs() >= 1,
             "batch arrays disagree in length");
  for (int32_t id : b.ids)
    if (id < 0 || id >= vocab)
      throw InputError("token id " + std::to_string(id) + " is outside the model's vocabulary [0, " +
                       std::to_string(vocab) + ")");
  for (int32_t t : b.targets)  // the CUDA loss reads the target's logit unchecked
    if (t != kIgnoreTarget && (t < 0 || t >= vocab))
      throw InputError("target " + std::to_string(t) + " is neither -100 nor a token of the model's vocabulary [0, " +
                       std::to_string(vocab) + ")");
  T_ = T;
  num_targets_ = b.num_targets;
  ops.copy_to_device(ids_.data, b.ids.data(), size_t(T) * 4);
  ops.copy_to_device(targets_.data, b.targets.data(), size_t(T) * 4);
  ops.copy_to_device(positions_.data, b.positions.data(), size_t(T) * 4);
  ops.copy_to_device(cu_seqlens_.data, b.cu_seqlens.data(), b.cu_seqlens.size() * 4);
  seq_.positions = positions_.rows(0, T);
  seq_.cu_seqlens = cu_seqlens_.rows(0, int64_t(b.cu_seqlens.size()));
  seq_.num_seqs = b.num_seqs();
  seq_.max_seqlen = b.max_seqlen;
}

}  // namespace qsft
