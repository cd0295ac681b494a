#include "engine/train/adamw.h"

#include <algorithm>
#include <cmath>

namespace qsft {

AdamWOptimizer::AdamWOptimizer(Ops& ops, int64_t num_params)
    : ops_(ops), arena_(ops, bytes(num_params)) {
  m_ = arena_.take(DType::F32, {num_params});
  v_ = arena_.take(DType::F32, {num_params});
}

void AdamWOptimizer::step(Tensor& params, const Tensor& grads, const AdamWConfig& cfg, double lr) {
  ++step_;
  ops_.adamw_step(params, grads, m_, v_, AdamWHyper{lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, step_});
}

double clip_grad_norm(Ops& ops, Tensor& grads, double max_norm) {
  const double norm = std::sqrt(ops.sum_squares(grads));
  if (max_norm > 0) {
    const double coef = std::min(1.0, max_norm / (norm + 1e-6));  // torch clamps the coefficient at 1
    if (coef < 1.0) ops.scale_inplace(grads, float(coef));
  }
  return norm;
}

}  // namespace qsft
