#include "kernels/elementwise.h"

#include "kernels/rng.h"

namespace qsft::cpu {

void add_inplace(float* y, const float* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void scale_inplace(float* y, float s, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] *= s;
}

void dropout(const float* x, int64_t n, float p, uint64_t seed, float* y) {
  const float keep_scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = p == 0.0f || rng::uniform(seed, uint64_t(i)) >= p;
    y[i] = keep ? x[i] * keep_scale : 0.0f;
  }
}

}  // namespace qsft::cpu
