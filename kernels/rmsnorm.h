// RMSNorm as Qwen2 computes it: y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps), statistics in fp32.
#pragma once
#include <cstdint>

namespace qsft::cpu {

// x [T, H], w [H], y [T, H], rstd [T] (saved for the backward).
void rmsnorm_fwd(const float* x, const float* w, int64_t T, int64_t H, float eps, float* y, float* rstd);

// dx += J^T dy, accumulating (dx is the residual-stream gradient). With r = rstd[t]:
//   dx_k += r * w_k * dy_k - r^3 * x_k / H * sum_j dy_j * w_j * x_j.   dy, x, dx [T, H], w [H], rstd [T]
void rmsnorm_bwd(const float* dy, const float* x, const float* w, const float* rstd, int64_t T, int64_t H, float* dx);

}  // namespace qsft::cpu
