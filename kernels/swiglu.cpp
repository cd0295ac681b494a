#include "kernels/swiglu.h"

#include <cmath>

namespace qsft::cpu {

void swiglu_fwd(const float* gate_up, int64_t T, int64_t I, float* out) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    const float* gate = gate_up + t * 2 * I;
    const float* up = gate + I;
    for (int64_t i = 0; i < I; ++i) out[t * I + i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
  }
}

void swiglu_bwd(const float* dout, const float* gate_up, int64_t T, int64_t I, float* dgate_up) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    const float* gate = gate_up + t * 2 * I;
    const float* up = gate + I;
    float* dgate = dgate_up + t * 2 * I;
    float* dup = dgate + I;
    for (int64_t i = 0; i < I; ++i) {
      const float g = gate[i], dy = dout[t * I + i];
      const float sig = 1.0f / (1.0f + std::exp(-g));
      dgate[i] = dy * up[i] * sig * (1.0f + g * (1.0f - sig));
      dup[i] = dy * g * sig;
    }
  }
}

}  // namespace qsft::cpu
