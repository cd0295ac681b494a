// CUDA launcher of Ops::lora_db_du's fused kernel (lora_db_du.cu; the reference is its two GEMMs, engine/ops.h):
// for one LoRA member, dB += s dy^T u and du = s dy B from one read of dy [T, out], the largest operand, which
// cuBLASLt reads once per GEMM.
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/base/tensor.h"

namespace qsft::cuda {

// Whether the kernel takes the operands: BF16 dy, u, B and du, r 16, out a multiple of 8, dy's, u's and du's
// row strides multiples of 8 and every pointer 16-byte aligned; QSFT_LORA_DB_DU=0 turns it off (to compare).
bool lora_db_du_fits(DType dt, int64_t out, int64_t r, const void* dy, int64_t ldy, const void* u, int64_t ldu,
                     const void* B, const void* du, int64_t lddu);
// dy [T, out] (row stride ldy), u [T, r] (ldu), B [out, r] packed, dB F32 [out, r] packed (accumulated), du [T, r]
// (lddu, written). workspace: device memory free during the call for the fp32 partial sums of the split ranges.
// Returns false, having done nothing, when the workspace is too small for any split: then the caller runs the GEMMs.
bool lora_db_du(const void* dy, int64_t ldy, const void* u, int64_t ldu, const void* B, int64_t T, int64_t out,
                int64_t r, float s, float* dB, void* du, int64_t lddu, void* workspace, size_t workspace_bytes,
                void* stream);

}  // namespace qsft::cuda
