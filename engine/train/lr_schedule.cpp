#include "engine/train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace qsft {

namespace {

constexpr double kPi = std::numbers::pi;

double warmup_factor(double k, double W) { return k / std::max(1.0, W); }

// transformers: 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)), left to right.
double cosine_factor(double progress, double num_cycles) {
  return 0.5 * (1.0 + std::cos(kPi * num_cycles * 2.0 * progress));
}

// _get_wsd_scheduler_lambda's shapes of progress p in [0, 1): rising for the warmup, falling for the decay.
double wsd_rise(const std::string& shape, double p) {
  if (shape == "cosine") return 0.5 * (1.0 - std::cos(kPi * p));
  if (shape == "1-sqrt") return 1.0 - std::sqrt(1.0 - p);
  return p;  // linear
}
double wsd_fall(const std::string& shape, double p, double num_cycles) {
  if (shape == "cosine") return cosine_factor(p, num_cycles);
  if (shape == "1-sqrt") return 1.0 - std::sqrt(p);
  return 1.0 - p;  // linear
}

}  // namespace

const std::vector<std::string>& LrSchedule::types() {
  static const std::vector<std::string> t = {
      "linear", "cosine", "cosine_with_min_lr", "constant", "constant_with_warmup", "warmup_stable_decay"};
  return t;
}

std::vector<std::string> LrSchedule::kwargs_of(const std::string& type) {
  if (type == "cosine") return {"num_cycles"};
  if (type == "cosine_with_min_lr") return {"min_lr", "min_lr_rate", "num_cycles"};
  if (type == "warmup_stable_decay")
    return {"decay_type", "min_lr_ratio", "num_cycles", "num_decay_steps", "num_stable_steps", "warmup_type"};
  return {};
}

const std::vector<std::string>& LrSchedule::wsd_shapes() {
  static const std::vector<std::string> s = {"linear", "cosine", "1-sqrt"};
  return s;
}

double LrSchedule::at(int64_t k) const { return lr * factor(k); }  // LambdaLR: base_lr * lambda(step)

double LrSchedule::factor(int64_t k) const {
  if (type == "constant") return 1.0;
  const double W = double(warmup_steps), N = double(total_steps), s = double(k);
  const double cycles = kwargs.num_cycles.value_or(0.5);
  if (type == "warmup_stable_decay") {
    const int64_t D = kwargs.num_decay_steps.value_or(0);
    const int64_t S = kwargs.num_stable_steps.value_or(total_steps - warmup_steps - D);
    const double floor = kwargs.min_lr_ratio.value_or(0.0);
    if (k < warmup_steps) {
      const double f = wsd_rise(kwargs.warmup_type.value_or("linear"), warmup_factor(s, W));
      return std::max(0.0, f * (1.0 - floor) + floor);
    }
    if (k < warmup_steps + S) return 1.0;
    if (k < warmup_steps + S + D) {
      const double p = double(k - warmup_steps - S) / double(std::max<int64_t>(1, D));
      const double f = wsd_fall(kwargs.decay_type.value_or("cosine"), p, cycles);
      return std::max(0.0, f * (1.0 - floor) + floor);
    }
    return floor;
  }
  if (k < warmup_steps) return warmup_factor(s, W);
  if (type == "constant_with_warmup") return 1.0;
  if (type == "linear") return std::max(0.0, (N - s) / std::max(1.0, N - W));
  const double progress = (s - W) / std::max(1.0, N - W);
  const double f = cosine_factor(progress, cycles);
  if (type == "cosine") return std::max(0.0, f);
  const double r = kwargs.min_lr_rate ? *kwargs.min_lr_rate : kwargs.min_lr.value_or(0.0) / lr;  // with_min_lr
  return std::max(0.0, f * (1.0 - r) + r);
}

int64_t warmup_steps_for(double warmup_steps, double warmup_ratio, int64_t total_steps) {
  if (warmup_steps >= 1) return int64_t(warmup_steps);
  const double ratio = warmup_steps > 0 ? warmup_steps : warmup_ratio;
  return int64_t(std::ceil(ratio * double(total_steps)));
}

}  // namespace qsft
