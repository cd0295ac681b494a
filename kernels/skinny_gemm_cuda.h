// CUDA launchers of C += alpha U op(W) (or C = alpha U op(W)) for a small inner dimension K (at most kSkinnyMaxK):
// the LoRA up-projections y (+)= s u B^T (K = r) and dx (+)= du A (K = n r), and Ops::lora_dx_dropout (each member's
// product through its dropout mask). Such a product is bound by reading and writing C; cuBLASLt's beta = 1 GEMM moved C
// at 44 % of the copy bandwidth on the H200 (y += s u B^T, T 16384 x out 18944, r 16: 0.665 ms;
// bench/gpu-runs/2026-11-30-45ffbc3). Here a block reads its [64, 64] tile of C once (16-byte words), multiplies U [64,
// K] by W [K, 64] with mma.sync (fp32 accumulation) in K segments of at most 64, and writes C once: C = round(C + sum
// over segments), one rounding as cuBLASLt's epilogue; with beta 0 C is only written. The CPU reference is the GEMM
// (Ops::gemm with beta 1 or 0) and, for the masked form, the default Ops::lora_dx_dropout_impl (a GEMM per member, then
// dropout(_add)).
#pragma once
#include <cstdint>

#include "kernels/gemm_cuda.h"

namespace qsft::cuda {

constexpr int64_t kSkinnyMaxK = 256;

// Whether skinny_add takes C = alpha op(U) op(W) + beta C (+ bias, C from c_src): beta 1 with C read in place, or
// beta 0; no bias, U not transposed, all BF16, 8 <= K <= kSkinnyMaxK, K and N multiples of 8, every row stride a
// multiple of 8 elements and every pointer 16-byte aligned. QSFT_SKINNY_GEMM=0 turns it off (cuBLASLt runs them: to
// compare).
bool skinny_add_fits(const GemmOperand& U, bool transU, const GemmOperand& W, bool transW, const GemmOperand& C,
                     float beta, const void* bias, const void* c_src);
// C [M, N] = alpha U op(W) + beta C, beta 1 or 0: U [M, K], W [N, K] (transW: op(W) = W^T, as in y += s u B^T) or
// [K, N].
void skinny_add(const GemmOperand& U, const GemmOperand& W, bool transW, const GemmOperand& C, float alpha, float beta,
                void* stream);

// Whether lora_dx_dropout takes: BF16, r a multiple of 8 and at most 64, in a multiple of 8, 1 to 3 members, the
// pointers 16-byte aligned (and QSFT_SKINNY_GEMM not 0).
bool lora_dx_dropout_fits(DType dt, int64_t in, int64_t r, int n, const void* du, const void* A, const void* dx);
// dx [T, in] (row stride ldx) += sum_j dropout_j(du_j A_j) (accumulate; else dx = ...): du [T, n r] packed (member
// j's columns j r..), A [n r, in] packed (member j's rows j r..); dropout_j is the dropout op's for seeds[j] at the
// flat index t in + c (rng::uniforms16, kept when u >= p, times 1 / (1 - p)), applied to the fp32 product.
void lora_dx_dropout(const void* du, const void* A, int64_t T, int64_t in, int64_t r, int n, float p,
                     const uint64_t* seeds, void* dx, int64_t ldx, bool accumulate, void* stream);

}  // namespace qsft::cuda
