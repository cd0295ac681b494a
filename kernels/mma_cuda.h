// The warp-level tensor-core instruction the mma.sync kernels share (attention_mma*, lora_dropout, skinny_gemm):
// PTX mma.m16n8k16, bf16 in, fp32 accumulation. Fragment layouts: kernels/attention_mma_cuda.h's header comment.
// CUDA code: include from .cu files only.
#pragma once
#include <cstdint>

namespace qsft::cuda {

// c [16 x 8] += a [16 x 16] b [16 x 8]
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The two bf16 at p (4-byte aligned) as one fragment register, the lower column in the low half.
template <class T>
__device__ __forceinline__ uint32_t word_at(const T* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

}  // namespace qsft::cuda
