// Learning-rate schedules exactly as transformers' get_*_schedule_with_warmup: the rate for optimizer step k
// (0-based; the first update uses k = 0, so a warmup starts from 0) is lr * factor(k):
//   warmup (k < W):       k / max(1, W)
//   constant:             1
//   linear:               max(0, (N - k) / max(1, N - W))
//   cosine:               max(0, 0.5 * (1 + cos(pi * (k - W) / max(1, N - W))))
// N = total optimizer steps, W = warmup steps (warmup_steps_for gives W as transformers computes it).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace qsft {

struct LrSchedule {
  std::string type = "linear";  // linear | cosine | constant | constant_with_warmup (transformers' default: linear)
  double lr = 5e-5;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  double at(int64_t step) const;
  static const std::vector<std::string>& types();
};

// transformers' warmup steps: warmup_steps >= 1 is a count (truncated); 0 < warmup_steps < 1 is a ratio of the
// total, ceil(ratio * total) (v5); otherwise the v4 warmup_ratio, ceil(ratio * total).
int64_t warmup_steps_for(double warmup_steps, double warmup_ratio, int64_t total_steps);

}  // namespace qsft
