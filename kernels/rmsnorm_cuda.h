// CUDA launchers of RMSNorm (kernels/rmsnorm.h is the reference). x, w, y, dy, dx have dtype dt (F32 or
// BF16); rstd is F32. R rows of H, each tensor's rows laid out as its NormRows (packed, or strided head views).
// One warp per row when rows are 16-byte aligned and short (bf16 H <= 4096 forward, <= 2048 backward), else one
// block per row; statistics in fp32. With bf16 storage the output follows transformers' Qwen2RMSNorm: y = w * bf16(x *
// rstd) (the normalised row is rounded before the weight).
#pragma once
#include <cstdint>

#include "engine/base/tensor.h"
#include "kernels/rmsnorm.h"

namespace qsft::cuda {

void rmsnorm_fwd(DType dt, const void* x, NormRows xl, const void* w, int64_t R, int64_t H, float eps, void* y,
                 NormRows yl, float* rstd, void* stream);
// g = r w dy - r^3 x / H * sum_j(dy_j w_j x_j), r = rstd[row]; dx += g (accumulate) or dx = g (dx may be dy).
void rmsnorm_bwd(DType dt, const void* dy, NormRows dyl, const void* x, NormRows xl, const void* w, const float* rstd,
                 int64_t R, int64_t H, void* dx, NormRows dxl, bool accumulate, void* stream);

}  // namespace qsft::cuda
