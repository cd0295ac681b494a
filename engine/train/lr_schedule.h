// Learning-rate schedules exactly as transformers' get_scheduler builds them (a LambdaLR): the rate for optimizer
// step k (0-based; the first update uses k = 0, so a warmup starts from 0) is lr * factor(k), N = total optimizer
// steps, W = warmup steps (warmup_steps_for gives W as transformers computes it), p = progress, c = num_cycles:
//   warmup (k < W):        k / max(1, W)                             (all but constant and warmup_stable_decay)
//   constant:              1
//   linear:                max(0, (N - k) / max(1, N - W))
//   cosine:                max(0, 0.5 (1 + cos(pi c 2 p))),  p = (k - W) / max(1, N - W)
//   cosine_with_min_lr:    the cosine factor f scaled to end at r: max(0, f (1 - r) + r),
//                          r = min_lr_rate, or min_lr / lr
//   warmup_stable_decay:   warmup from min_lr_ratio to 1 over W steps (linear | cosine | 1-sqrt), 1 for S steps,
//                          decay to min_lr_ratio over D steps (linear | cosine | 1-sqrt), then min_lr_ratio;
//                          S = num_stable_steps, or N - W - D
// Each factor is evaluated in double in transformers' order of operations, so the rates are the same doubles.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qsft {

// transformers' lr_scheduler_kwargs of the schedules that take them (unset: transformers' default).
struct LrSchedulerKwargs {
  std::optional<double> num_cycles;                    // cosine, cosine_with_min_lr, warmup_stable_decay: 0.5
  std::optional<double> min_lr, min_lr_rate;           // cosine_with_min_lr: exactly one of them
  std::optional<int64_t> num_stable_steps;             // warmup_stable_decay: N - W - D when unset
  std::optional<int64_t> num_decay_steps;              // warmup_stable_decay: required
  std::optional<std::string> warmup_type, decay_type;  // warmup_stable_decay: linear | cosine | 1-sqrt
  std::optional<double> min_lr_ratio;                  // warmup_stable_decay: 0
};

struct LrSchedule {
  std::string type = "linear";  // one of types() (transformers' default: linear)
  double lr = 5e-5;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  LrSchedulerKwargs kwargs;

  double at(int64_t step) const;  // lr * factor(step)
  double factor(int64_t step) const;
  static const std::vector<std::string>& types();
  // The kwargs each type accepts (transformers' scheduler function arguments), and the WSD phase shapes.
  static std::vector<std::string> kwargs_of(const std::string& type);
  static const std::vector<std::string>& wsd_shapes();
};

// transformers' warmup steps: warmup_steps >= 1 is a count (truncated); 0 < warmup_steps < 1 is a ratio of the
// total, ceil(ratio * total) (v5); otherwise the v4 warmup_ratio, ceil(ratio * total).
int64_t warmup_steps_for(double warmup_steps, double warmup_ratio, int64_t total_steps);

}  // namespace qsft
