// CUDA launchers of Ops::lora_a_dropout's and Ops::lora_da_dropout's fused kernels (kernels/lora_dropout.h; the
// reference of each is dropout then a GEMM per member). For the n members of a LoRA stack, u[:, j r:(j+1) r] =
// dropout_j(x) A_j^T (lora_dropout.cu) and dA_j += du_j^T dropout_j(x) (lora_dropout_bwd.cu), with dropout_j the
// dropout op's mask and scaling for seeds[j] (rng::uniform16 at index t * in + c kept when >= p, x * 1/(1-p)
// rounded to bf16 as the dropout kernel stores it): x is read once for all members, nothing of [T, in] is written.
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/base/tensor.h"

namespace qsft::cuda {

// Whether the kernel takes these operands: BF16, in and r multiples of 8, n r <= 192, x and A 16-byte aligned.
// Otherwise the backend runs the reference composition (dropout into the scratch, a GEMM per member).
bool lora_a_dropout_fits(DType dt, int64_t in, int64_t r, int n, const void* x, const void* A);
// x [T, in] packed, A [n r, in] packed, u [T, n r] with row stride ldu (all BF16), seeds [n]. workspace: device
// memory free during the call (the caller's dropout scratch); with room for them the K range is split over blocks
// (so that short T still fills the GPU) and the fp32 partial sums are added there in a fixed order.
void lora_a_dropout(const void* x, int64_t T, int64_t in, const void* A, int64_t r, int n, float p,
                    const uint64_t* seeds, void* u, int64_t ldu, void* workspace, size_t workspace_bytes, void* stream);

// The backward's A gradients: BF16 x and du, in a multiple of 8, r a multiple of 16, n r <= 192, x and du 16-byte
// aligned; otherwise the backend runs the reference composition.
bool lora_da_dropout_fits(DType dt, int64_t in, int64_t r, int n, const void* x, const void* du);
// du [T, n r] packed, x [T, in] packed (BF16), dA F32 [n r, in] packed (accumulated), seeds [n]. workspace: as for
// lora_a_dropout (the tokens split over blocks, fp32 partial sums [splits, n r, in] added in a fixed order).
void lora_da_dropout(const void* du, const void* x, int64_t T, int64_t in, int64_t r, int n, float p,
                     const uint64_t* seeds, float* dA, void* workspace, size_t workspace_bytes, void* stream);

}  // namespace qsft::cuda
