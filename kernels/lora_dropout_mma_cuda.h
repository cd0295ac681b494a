// Device helpers of the fused LoRA dropout kernels (lora_dropout.cu: u = dropout(x) A^T; lora_dropout_bwd.cu: dA +=
// du^T dropout(x)): each member's dropout of 8 elements of x exactly as the dropout kernel stores them, the shapes
// they take, the split of a reduction over blocks, and the launch constants (the mma.sync instruction:
// kernels/mma_cuda.h). CUDA code: include from .cu files only.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/kernel_util_cuda.h"
#include "kernels/lora_dropout.h"
#include "kernels/mma_cuda.h"
#include "kernels/rng.h"

namespace qsft::cuda::lora_mma {

constexpr int kMembers = cpu::kLoraDropoutMaxMembers;
constexpr int kBlock = 128;  // 4 warps
constexpr int kMaxRows = 192;  // n r of a stack the kernel takes: 3 members of r <= 64

struct Seeds {  // one dropout seed per member (kernel parameter), mixed: rng::mix64(seed)
  uint64_t s[kMembers];
};

// x * keep_scale for the 8 bf16 of x, each rounded once to bf16: the dropout kernel's value of a kept element, the
// same for every member (a dropped one is +0: the value's bits and-ed with a zero mask).
__device__ __forceinline__ uint4 kept_values(uint4 raw, float keep_scale) {
  const __nv_bfloat162* e = reinterpret_cast<const __nv_bfloat162*>(&raw);
  uint4 out;
  __nv_bfloat162* o = reinterpret_cast<__nv_bfloat162*>(&out);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float2 f = __bfloat1622float2(e[k]);
    o[k] = __floats2bfloat162_rn(__fmul_rn(f.x, keep_scale), __fmul_rn(f.y, keep_scale));
  }
  return out;
}

// The mask of a bf16 pair from a 32-bit word of a dropout hash: the word's low field decides the pair's first
// element (its low half), the high field the second; a half is 0xFFFF when its field passes the threshold
// (rng::kept16), else 0.
__device__ __forceinline__ uint32_t pair_mask(uint32_t word, uint32_t threshold) {
  return ((word & 0xFFFFu) >= threshold ? 0x0000FFFFu : 0u) | ((word >> 16) >= threshold ? 0xFFFF0000u : 0u);
}

// One member's dropout of 8 elements of x at flat index i (a multiple of 4), from their kept values: element k takes
// field k % 4 of hash i / 4 + k / 4 (rng::keeps16), so word w of the vector takes 32-bit word w of the two hashes.
__device__ __forceinline__ uint4 dropped(uint4 kept, uint64_t mixed_seed, uint64_t i, uint32_t threshold) {
  const uint64_t h0 = rng::hash_mixed(mixed_seed, i / 4), h1 = rng::hash_mixed(mixed_seed, i / 4 + 1);
  return make_uint4(kept.x & pair_mask(uint32_t(h0), threshold), kept.y & pair_mask(uint32_t(h0 >> 32), threshold),
                    kept.z & pair_mask(uint32_t(h1), threshold), kept.w & pair_mask(uint32_t(h1 >> 32), threshold));
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A reduction of length `depth` split over blocks: about `wanted` splits, each >= min_depth and a whole number of
// steps, their fp32 partial sums (per_split bytes each) within the workspace (none unless it is 16-byte aligned).
struct Splits {
  int64_t count, length;
};
inline Splits split_reduction(int64_t wanted, int64_t depth, int64_t min_depth, int64_t step, const void* workspace,
                              size_t workspace_bytes, size_t per_split) {
  int64_t count = aligned16(workspace) ? std::min(wanted, depth / min_depth) : 1;
  count = std::max<int64_t>(1, std::min<int64_t>(count, int64_t(workspace_bytes / per_split)));
  const int64_t length = ceil_div(ceil_div(depth, step), count) * step;
  return {ceil_div(depth, length), length};
}

// Whether the fused kernels take a stack: BF16, 1 to 3 members of r a multiple of 8, n r <= 192, in a positive
// multiple of 8 (16-byte rows), both streamed operands 16-byte aligned.
inline bool stack_fits(DType dt, int64_t in, int64_t r, int n, const void* a, const void* b) {
  return dt == DType::BF16 && n >= 1 && n <= kMembers && r > 0 && r % 8 == 0 && n * r <= kMaxRows && in > 0 &&
         in % 8 == 0 && aligned16(a) && aligned16(b);
}

// Calls f(Width<K>{}) with the smallest K of 1, 2, 3, 4, 6, 8, 12, 16, 24 (the instantiated tile counts; r in 8 to
// 64 times n in 1 to 3 hits one exactly) with K >= tiles, K <= Max (tiles <= Max).
template <int Max, int I = 0, class F>
void dispatch_tiles(int64_t tiles, F&& f) {
  constexpr int kCounts[] = {1, 2, 3, 4, 6, 8, 12, 16, 24};
  constexpr int K = kCounts[I];
  if constexpr (K >= Max) {
    f(Width<Max>{});
  } else {
    if (tiles <= K) return f(Width<K>{});
    dispatch_tiles<Max, I + 1>(tiles, f);
  }
}

}  // namespace qsft::cuda::lora_mma
