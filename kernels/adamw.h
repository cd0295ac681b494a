// AdamW exactly as torch.optim.AdamW's single-tensor path (decoupled weight decay, bias correction):
//   p *= 1 - lr * wd
//   m = lerp(m, g, 1 - b1)            (= b1 m + (1 - b1) g, with torch's lerp rounding)
//   v = b2 v + (1 - b2) g g
//   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),   bc1 = 1 - b1^t, bc2 = 1 - b2^t, t counts from 1
// The scalars (1 - lr*wd, lr/bc1, sqrt(bc2), 1 - b1, 1 - b2) are computed in double like torch's Python floats and
// rounded to fp32 once; the per-element math is fp32.
#pragma once
#include <cstdint>

namespace qsft::cpu {

// The settings of a run (torch.optim.AdamW's arguments; lr is the base rate the schedule scales) ...
struct AdamWSettings {
  double lr = 1e-4, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};
// ... and of one update: the settings at this step's learning rate, and the step count (from 1).
struct AdamWHyper : AdamWSettings {
  int64_t step = 0;
};

// p, g, m, v [n]: p, m, v updated in place.
void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWHyper& hyper);

}  // namespace qsft::cpu
