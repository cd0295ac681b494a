#include "engine/train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace qsft {

const std::vector<std::string>& LrSchedule::types() {
  static const std::vector<std::string> t = {"linear", "cosine", "constant", "constant_with_warmup"};
  return t;
}

double LrSchedule::at(int64_t k) const {
  if (type == "constant") return lr;
  const double W = double(warmup_steps), N = double(total_steps), s = double(k);
  if (k < warmup_steps) return lr * s / std::max(1.0, W);
  if (type == "constant_with_warmup") return lr;
  if (type == "linear") return lr * std::max(0.0, (N - s) / std::max(1.0, N - W));
  const double progress = (s - W) / std::max(1.0, N - W);  // cosine, half a cycle
  return lr * std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
}

int64_t warmup_steps_for(double warmup_steps, double warmup_ratio, int64_t total_steps) {
  if (warmup_steps >= 1) return int64_t(warmup_steps);
  const double ratio = warmup_steps > 0 ? warmup_steps : warmup_ratio;
  return int64_t(std::ceil(ratio * double(total_steps)));
}

}  // namespace qsft
