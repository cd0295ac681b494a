// Device helpers of the fused LoRA dropout kernel (lora_dropout.cu: u = dropout(x) A^T): each member's dropout of
// 8 elements of x exactly as the dropout kernel stores them, and the launch constants (the mma.sync instruction:
// kernels/mma_cuda.h). CUDA code: include from .cu files only.
#pragma once
#include <cstdint>

#include "kernels/kernel_util_cuda.h"
#include "kernels/lora_dropout.h"
#include "kernels/mma_cuda.h"
#include "kernels/rng.h"

namespace qsft::cuda::lora_mma {

constexpr int kMembers = cpu::kLoraDropoutMaxMembers;
constexpr int kBlock = 128;  // 4 warps
constexpr int kMaxRows = 192;  // n r of a stack the kernel takes: 3 members of r <= 64

struct Seeds {  // one dropout seed per member (kernel parameter)
  uint64_t s[kMembers];
};

// Dropout of the 8 bf16 of x at flat index i (a multiple of 4): rng::uniforms16's draws, keep u >= p, the kept
// value x * keep_scale rounded once to bf16 (the dropout kernel's values, bit for bit).
__device__ __forceinline__ uint4 dropped(uint4 raw, uint64_t seed, uint64_t i, float p, float keep_scale) {
  float u[8];
  rng::uniforms16<8>(seed, i, u);
  const bf16* e = reinterpret_cast<const bf16*>(&raw);
  uint4 out;
  bf16* o = reinterpret_cast<bf16*>(&out);
#pragma unroll
  for (int k = 0; k < 8; ++k)
    o[k] = __float2bfloat16_rn(dropout_value(__bfloat162float(e[k]), u[k], p, keep_scale));
  return out;
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Whether the fused kernel takes a stack: BF16, 1 to 3 members of r a multiple of 8, n r <= 192, in a multiple of 8
// (16-byte rows), both streamed operands 16-byte aligned.
inline bool stack_fits(DType dt, int64_t in, int64_t r, int n, const void* a, const void* b) {
  return dt == DType::BF16 && n >= 1 && n <= kMembers && r > 0 && r % 8 == 0 && n * r <= kMaxRows && in % 8 == 0 &&
         aligned16(a) && aligned16(b);
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
