// Device helpers of the fused LoRA dropout kernel (lora_dropout.cu: u = dropout(x) A^T): mma.sync m16n8k16 on bf16
// fragments, each member's dropout of 8 elements of x exactly as the dropout kernel stores them, the SM count and the
// launch constants. CUDA code: include from .cu files only.
#pragma once
#include <cstdint>

#include "kernels/kernel_util_cuda.h"
#include "kernels/lora_dropout.h"
#include "kernels/rng.h"

namespace qsft::cuda::lora_mma {

constexpr int kMembers = cpu::kLoraDropoutMaxMembers;
constexpr int kBlock = 128;  // 4 warps
constexpr int kMaxRows = 192;  // n r of a stack the kernel takes: 3 members of r <= 64

struct Seeds {  // one dropout seed per member (kernel parameter)
  uint64_t s[kMembers];
};

// c += a b: a [16, 16] row-major fragment (4 words of 2 bf16), b [16, 8] column-major (2 words), c [16, 8] fp32.
// Thread (g = lane / 4, q = lane % 4) holds a: rows g, g + 8 x columns 2q, 2q + 1, 2q + 8, 2q + 9; b: rows 2q, 2q + 1,
// 2q + 8, 2q + 9 x column g; c: rows g, g + 8 x columns 2q, 2q + 1.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t word_at(const bf16* p) { return *reinterpret_cast<const uint32_t*>(p); }

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
