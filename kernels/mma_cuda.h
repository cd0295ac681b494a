// The warp-level tensor-core building blocks the mma.sync kernels share (attention_mma*, lora_dropout, skinny_gemm):
// PTX mma.m16n8k16 (bf16 in, fp32 accumulation), ldmatrix, and the fragment loads of row-major shared tiles built
// on it. Fragment layouts: kernels/attention_mma_cuda.h's header comment. CUDA code: include from .cu files only.
#pragma once
#include <cuda_bf16.h>

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

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const __nv_bfloat16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const __nv_bfloat16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}

// A fragment of the [16 x 16] block of a row-major tile whose top-left element is at x (row stride ld).
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const __nv_bfloat16* x, int ld) {
  const int lane = threadIdx.x & 31;
  ldmatrix_x4(a, x + (lane & 15) * ld + (lane >> 4) * 8);
}
// A fragment of A = X^T [16 x 16] from a row-major X whose top-left element is at x: X rows k0..k0+15 are A's
// columns (dS [queries x keys] from dS^T stored key-major). Matrix m of the x4 is A's (rows 8 (m % 2), columns
// 8 (m / 2)) block = X's (rows 8 (m / 2), columns 8 (m % 2)) block, transposed by .trans.
__device__ __forceinline__ void load_a_trans(uint32_t (&a)[4], const __nv_bfloat16* x, int ld) {
  const int lane = threadIdx.x & 31;
  ldmatrix_x4_trans(a, x + ((lane & 7) + (lane >> 4) * 8) * ld + ((lane >> 3) & 1) * 8);
}
// B fragments of two n8 tiles, B[k][n] = X[n][k], X's top-left at x: X rows n0..n0+15, columns k0..k0+15.
__device__ __forceinline__ void load_b_rows(uint32_t (&b)[4], const __nv_bfloat16* x, int ld) {
  const int lane = threadIdx.x & 31;
  ldmatrix_x4(b, x + ((lane & 7) + ((lane >> 4) << 3)) * ld + ((lane >> 3) & 1) * 8);
}
// B fragments of two n8 tiles, B[k][n] = X[k][n], X's top-left at x: X rows k0..k0+15, columns n0..n0+15.
__device__ __forceinline__ void load_b_cols(uint32_t (&b)[4], const __nv_bfloat16* x, int ld) {
  const int lane = threadIdx.x & 31;
  ldmatrix_x4_trans(b, x + ((lane & 7) + ((lane >> 3) & 1) * 8) * ld + (lane >> 4) * 8);
}

}  // namespace qsft::cuda
