// The weight gradients of full fine-tuning that are not a GEMM: a Linear's bias, an RMSNorm's weight and the
// embedding table. All accumulate (+=) into F32 gradients, each element summed over the tokens in token order
// (deterministic: the result does not depend on the thread count).
#pragma once
#include <cstdint>

#include "kernels/rmsnorm.h"

namespace qsft::cpu {

// db[j] += sum_t dy[t * ld + j].   dy [T, N] with row stride ld (a column slice), db [N]
void bias_grad(const float* dy, int64_t T, int64_t N, int64_t ld, float* db);

// dw[j] += sum_t dy[t, j] * x[t, j] * rstd[t]   (y = x * rstd * w, so dy/dw = x * rstd; x is the norm's input).
// dy, x: T rows of H laid out as dyl, xl (kernels/rmsnorm.h: packed, or strided head views), rstd [T], dw [H]
void rmsnorm_wgrad(const float* dy, NormRows dyl, const float* x, NormRows xl, const float* rstd, int64_t T, int64_t H,
                   float* dw);

// dtable[ids[t], :] += dout[t, :] (the embedding's backward: a scatter-add). Per table row the tokens with that id
// are summed in token order, then added to the row. ids [T] (each in [0, V): the caller checks), dout [T, H]
void embedding_bwd(const int32_t* ids, const float* dout, int64_t T, int64_t H, float* dtable);

}  // namespace qsft::cpu
