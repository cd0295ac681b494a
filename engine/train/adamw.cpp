#include "engine/train/adamw.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

#include "engine/base/error.h"

namespace qsft {

AdamWOptimizer::AdamWOptimizer(Ops& ops, int64_t num_params, int64_t decay_end)
    : ops_(ops), arena_(ops, bytes(num_params)), decay_end_(decay_end < 0 ? num_params : decay_end) {
  QSFT_CHECK(decay_end_ <= num_params, "weight-decay range beyond the parameters");
  m_ = arena_.take(DType::F32, {num_params});
  v_ = arena_.take(DType::F32, {num_params});
}

void AdamWOptimizer::step(Tensor& params, const Tensor& grads, const AdamWSettings& cfg, double lr) {
  ++step_;
  const int64_t P = params.numel(), d = decay_end_;
  const AdamWHyper h{{lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay}, step_};
  if (d == P) return ops_.adamw_step(params, grads, m_, v_, h);
  // Two groups: [0, d) with weight decay, [d, P) without.
  for (auto [a, b, wd] : {std::tuple{int64_t(0), d, cfg.weight_decay}, std::tuple{d, P, 0.0}}) {
    if (a == b) continue;
    Tensor p = params.rows(a, b), m = m_.rows(a, b), v = v_.rows(a, b);
    AdamWHyper hg = h;
    hg.weight_decay = wd;
    ops_.adamw_step(p, grads.rows(a, b), m, v, hg);
  }
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
