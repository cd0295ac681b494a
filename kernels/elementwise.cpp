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

// y = (accumulate ? y : 0) + (keep ? x / (1 - p) : 0), in fp32.
static void dropout_into(const float* x, int64_t n, float p, uint64_t seed, float* y, bool accumulate) {
  const float keep_scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float d = rng::uniform16(seed, uint64_t(i)) >= p ? x[i] * keep_scale : 0.0f;
    y[i] = accumulate ? y[i] + d : d;
  }
}

void dropout(const float* x, int64_t n, float p, uint64_t seed, float* y) { dropout_into(x, n, p, seed, y, false); }

void dropout_add(const float* x, int64_t n, float p, uint64_t seed, float* y) { dropout_into(x, n, p, seed, y, true); }

}  // namespace qsft::cpu
