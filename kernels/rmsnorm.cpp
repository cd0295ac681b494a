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

void rmsnorm_fwd(const float* x, const float* w, int64_t T, int64_t H, float eps, float* y, float* rstd) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) rstd[t] = normalize_row(x + t * H, w, H, eps, y + t * H);
}

void rmsnorm_bwd(const float* dy, const float* x, const float* w, const float* rstd, int64_t T, int64_t H, float* dx) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * H;
    const float* dyr = dy + t * H;
    double dot = 0.0;  // sum_j dy_j * w_j * x_j
    for (int64_t j = 0; j < H; ++j) dot += double(dyr[j]) * w[j] * xr[j];
    const double r = rstd[t];
    const float coef = float(r * r * r * dot / double(H));
    for (int64_t j = 0; j < H; ++j) dx[t * H + j] += rstd[t] * w[j] * dyr[j] - coef * xr[j];
  }
}

}  // namespace qsft::cpu
