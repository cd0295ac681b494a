#include "kernels/adamw.h"

#include <cmath>

namespace qsft::cpu {
namespace {

// torch's lerp: self + w (end - self) for |w| < 0.5, else end - (end - self)(1 - w).
inline float torch_lerp(float self, float end, float w) {
  return std::fabs(w) < 0.5f ? self + w * (end - self) : end - (end - self) * (1.0f - w);
}

}  // namespace

void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWHyper& hyper) {
  const double t = double(hyper.step);
  const float decay = float(1.0 - hyper.lr * hyper.weight_decay);
  const float m_weight = float(1.0 - hyper.beta1);
  const float beta2 = float(hyper.beta2), v_weight = float(1.0 - hyper.beta2);
  const float step_size = float(hyper.lr / (1.0 - std::pow(hyper.beta1, t)));
  const float bc2_sqrt = float(std::sqrt(1.0 - std::pow(hyper.beta2, t)));
  const float eps = float(hyper.eps);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    p[i] *= decay;
    m[i] = torch_lerp(m[i], g[i], m_weight);
    v[i] = v[i] * beta2 + v_weight * g[i] * g[i];
    p[i] += (-step_size * m[i]) / (std::sqrt(v[i]) / bc2_sqrt + eps);  // torch addcdiv's rounding order
  }
}

}  // namespace qsft::cpu
