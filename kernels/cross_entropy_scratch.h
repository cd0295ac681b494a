// The CUDA LM head + cross-entropy's scratch (kernels/cross_entropy_cuda.h), sized on the host without CUDA: the
// kernel carves it, the model plans and lends it (engine/model/run_state.h), `qwen-sft plan` counts it.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "engine/base/tensor.h"

namespace qsft::cuda {

constexpr size_t kLogitsBudget = size_t(256) << 20;  // bytes of one logits block

// Tokens per logits block: as many as kLogitsBudget holds, a multiple of 64 in [64, 8192].
inline int64_t lm_head_ce_chunk(int64_t V, DType dt) {
  const int64_t fit = int64_t(kLogitsBudget / (size_t(V) * dtype_size(dt)));
  return std::clamp<int64_t>(fit / 64 * 64, 64, 8192);
}

// Where each piece of the scratch lives (offsets in bytes, 256-byte aligned) for T tokens, hidden H, vocab V.
struct CeScratch {
  size_t idx, count, row_loss, row_correct, h_chunk, logits, dh_chunk, total;
  CeScratch(int64_t T, int64_t H, int64_t V, DType dt) {
    const int64_t C = std::min(lm_head_ce_chunk(V, dt), std::max<int64_t>(T, 1));
    const size_t es = dtype_size(dt);
    size_t off = 0;
    auto take = [&off](size_t bytes) {
      const size_t at = off;
      off += (bytes + 255) / 256 * 256;
      return at;
    };
    idx = take(size_t(T) * 4);
    count = take(4);
    row_loss = take(size_t(T) * 4);
    row_correct = take(size_t(T) * 4);
    h_chunk = take(size_t(C * H) * es);
    logits = take(size_t(C * V) * es);
    dh_chunk = take(size_t(C * H) * es);
    total = off;
  }
};

}  // namespace qsft::cuda
