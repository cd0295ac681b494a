// RMSNorm as Qwen2 computes it: y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps), statistics in fp32.
// Rows of H values may lie in memory as packed [R, H] or as the heads of wider token rows (NormRows): Qwen3's
// q and k head norms run on the strided head views of the fused QKV output, with no packed copies.
#pragma once
#include <cstdint>

#include "kernels/host_device.h"

namespace qsft {

// Where row r (of H values) lies: head r % heads of token row r / heads, token rows ld elements apart, so its
// element j is at (r / heads) * ld + (r % heads) * H + j. Packed [R, H] rows: heads 1, ld H. The q heads of a
// fused QKV output [T, (n + 2 nkv) D] (H = D): heads n, ld (n + 2 nkv) D; its k heads start nD further.
struct NormRows {
  int64_t heads = 1, ld = 0;
  static NormRows packed(int64_t H) { return {1, H}; }
  QSFT_HD int64_t at(int64_t r, int64_t H) const { return (r / heads) * ld + (r % heads) * H; }
};

}  // namespace qsft

namespace qsft::cpu {

// R rows: x and y laid out as xl, yl (y may be x), w [H], rstd [R] (saved for the backward).
void rmsnorm_fwd(const float* x, NormRows xl, const float* w, int64_t R, int64_t H, float eps, float* y, NormRows yl,
                 float* rstd);

// dx += J^T dy (accumulate: dx is the residual-stream gradient), else dx = J^T dy, where dx may be dy (every element
// of a row of dy is read before that row of dx is written). With r = rstd[row]:
//   (J^T dy)_k = r * w_k * dy_k - r^3 * x_k / H * sum_j dy_j * w_j * x_j.   R rows each, w [H], rstd [R]
void rmsnorm_bwd(const float* dy, NormRows dyl, const float* x, NormRows xl, const float* w, const float* rstd,
                 int64_t R, int64_t H, float* dx, NormRows dxl, bool accumulate);

}  // namespace qsft::cpu
