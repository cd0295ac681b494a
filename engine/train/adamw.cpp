#include "engine/train/adamw.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "engine/base/error.h"

namespace qsft {

AdamWOptimizer::AdamWOptimizer(Ops& ops, int64_t num_params) : ops_(ops), arena_(ops, bytes(num_params)) {
  m_ = arena_.take(DType::F32, {num_params});
  v_ = arena_.take(DType::F32, {num_params});
}

void AdamWOptimizer::step(Tensor& params, const Tensor& grads, const AdamWSettings& cfg, double lr) {
  ++step_;
  ops_.adamw_step(params, grads, m_, v_, AdamWHyper{{lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay}, step_});
}

void AdamWOptimizer::save(Checkpoint& ck) const {
  for (auto [host, moment] : {std::pair{&ck.exp_avg, &m_}, std::pair{&ck.exp_avg_sq, &v_}}) {
    host->resize(size_t(moment->numel()));
    ops_.copy_to_host(host->data(), moment->data, host->size() * sizeof(float));
  }
}

void AdamWOptimizer::load(const Checkpoint& ck) {
  for (auto [host, moment] : {std::pair{&ck.exp_avg, &m_}, std::pair{&ck.exp_avg_sq, &v_}}) {
    QSFT_CHECK(int64_t(host->size()) == moment->numel(), "checkpoint moments of another size");
    ops_.copy_to_device(moment->data, host->data(), host->size() * sizeof(float));
  }
  step_ = ck.state.global_step;
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
