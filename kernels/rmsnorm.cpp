#include "kernels/rmsnorm.h"

#include <cmath>

namespace qsft::cpu {
namespace {

// One row: rstd = 1 / sqrt(mean(x^2) + eps) (mean accumulated in double, then fp32 as torch), y = (x * rstd) * w.
float normalize_row(const float* x, const float* w, int64_t H, float eps, float* y) {
  double sum_sq = 0.0;
  for (int64_t j = 0; j < H; ++j) sum_sq += double(x[j]) * x[j];
  const float rstd = 1.0f / std::sqrt(float(sum_sq / double(H)) + eps);
  for (int64_t j = 0; j < H; ++j) y[j] = (x[j] * rstd) * w[j];
  return rstd;
}

}  // namespace

void rmsnorm_fwd(const float* x, NormRows xl, const float* w, int64_t R, int64_t H, float eps, float* y, NormRows yl,
                 float* rstd) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < R; ++t) rstd[t] = normalize_row(x + xl.at(t, H), w, H, eps, y + yl.at(t, H));
}

void rmsnorm_bwd(const float* dy, NormRows dyl, const float* x, NormRows xl, const float* w, const float* rstd,
                 int64_t R, int64_t H, float* dx, NormRows dxl, bool accumulate) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < R; ++t) {
    const float* xr = x + xl.at(t, H);
    const float* dyr = dy + dyl.at(t, H);
    float* dxr = dx + dxl.at(t, H);
    double dot = 0.0;  // sum_j dy_j * w_j * x_j
    for (int64_t j = 0; j < H; ++j) dot += double(dyr[j]) * w[j] * xr[j];
    const double r = rstd[t];
    const float coef = float(r * r * r * dot / double(H));
    for (int64_t j = 0; j < H; ++j) {
      const float g = rstd[t] * w[j] * dyr[j] - coef * xr[j];  // dyr[j] read before dxr[j] is written
      dxr[j] = accumulate ? dxr[j] + g : g;
    }
  }
}

}  // namespace qsft::cpu
