// CUDA launchers of the non-GEMM weight gradients (kernels/weight_grad.h is the reference). dy, x, dout have dtype
// dt (F32 or BF16), the gradients are F32 and accumulate (+=). Every element is summed in a fixed order
// (deterministic: no atomics). Streams are void* cudaStream_t.
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/base/tensor.h"
#include "kernels/rmsnorm.h"

namespace qsft::cuda {

// db[j] += sum_t dy[t * ld + j].   dy [T, N] with row stride ld
void bias_grad(DType dt, const void* dy, int64_t T, int64_t N, int64_t ld, float* db, void* stream);
// dw[j] += sum_t dy[t, j] * x[t, j] * rstd[t].   dy, x: T rows of H laid out as dyl, xl (kernels/rmsnorm.h), rstd
// F32 [T]
void rmsnorm_wgrad(DType dt, const void* dy, NormRows dyl, const void* x, NormRows xl, const float* rstd, int64_t T,
                   int64_t H, float* dw, void* stream);

// dtable[ids[t], :] += dout[t, :]. The tokens are grouped by id on the host (host_ids: the same ids as in the
// batch), each group summed in token order by one block, then added to its row: the CPU op's order exactly.
size_t embedding_bwd_scratch_bytes(int64_t T);
void embedding_bwd(DType dt, const int32_t* host_ids, const void* dout, int64_t T, int64_t H, float* dtable,
                   void* scratch, void* stream);

}  // namespace qsft::cuda
