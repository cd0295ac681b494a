#include "kernels/rope.h"

#include <cmath>
#include <vector>

namespace qsft::cpu {
namespace {

// Rotates every head of every token by direction * angle (direction +1 forward, -1 inverse), scaled. x [T, n, D],
// token rows ld apart.
void rotate(float* x, const int32_t* positions, int64_t T, int64_t n, int64_t D, int64_t ld, const float* inv_freq,
            float scale, float direction) {
  const int64_t half = D / 2;
#pragma omp parallel
  {
    std::vector<float> cos_t(static_cast<size_t>(half)),
        sin_t(static_cast<size_t>(half));  // [D/2] for the current token
#pragma omp for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t i = 0; i < half; ++i) {
        const float angle = float(positions[t]) * inv_freq[i];
        cos_t[i] = std::cos(angle) * scale;
        sin_t[i] = direction * (std::sin(angle) * scale);
      }
      for (int64_t head = 0; head < n; ++head) {
        float* lo = x + t * ld + head * D;
        float* hi = lo + half;
        for (int64_t i = 0; i < half; ++i) {
          const float a = lo[i], b = hi[i];
          lo[i] = a * cos_t[i] - b * sin_t[i];
          hi[i] = b * cos_t[i] + a * sin_t[i];
        }
      }
    }
  }
}

}  // namespace

std::vector<float> rope_default_inv_freq(int64_t D, double theta) {
  std::vector<float> inv_freq(size_t(D / 2));
  for (int64_t i = 0; i < D / 2; ++i) inv_freq[size_t(i)] = 1.0f / std::pow(float(theta), float(2 * i) / float(D));
  return inv_freq;
}

void rope_fwd(float* x, const int32_t* positions, int64_t T, int64_t n, int64_t D, int64_t ld, const float* inv_freq,
              float scale) {
  rotate(x, positions, T, n, D, ld, inv_freq, scale, +1.0f);
}

void rope_bwd(float* dx, const int32_t* positions, int64_t T, int64_t n, int64_t D, int64_t ld, const float* inv_freq,
              float scale) {
  rotate(dx, positions, T, n, D, ld, inv_freq, scale, -1.0f);
}

}  // namespace qsft::cpu
