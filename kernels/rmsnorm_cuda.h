// CUDA launchers of RMSNorm (kernels/rmsnorm.h is the reference). x, w, y, dy, dx have dtype dt (F32 or
// BF16); rstd is F32. One block per token row; statistics in fp32. With bf16 storage the output follows
// transformers' Qwen2RMSNorm: y = w * bf16(x * rstd) (the normalised row is rounded before the weight).
#pragma once
#include <cstdint>

#include "engine/base/tensor.h"

namespace qsft::cuda {

void rmsnorm_fwd(DType dt, const void* x, const void* w, int64_t T, int64_t H, float eps, void* y, float* rstd,
                 void* stream);
// dx += r w dy - r^3 x / H * sum_j(dy_j w_j x_j), r = rstd[t] (accumulates into dx).
void rmsnorm_bwd(DType dt, const void* dy, const void* x, const void* w, const float* rstd, int64_t T, int64_t H,
                 void* dx, void* stream);

}  // namespace qsft::cuda
