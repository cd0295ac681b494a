#include "engine/train/adamw.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "engine/base/error.h"

namespace qsft {

AdamWOptimizer::AdamWOptimizer(Ops& ops, int64_t num_params, ShardRange shard)
    : ops_(ops), num_params_(num_params), shard_(shard), arena_(ops, bytes(shard.count)) {
  m_ = arena_.take(DType::F32, {shard.count});
  v_ = arena_.take(DType::F32, {shard.count});
}

void AdamWOptimizer::step(Tensor& params, const Tensor& grads, const AdamWSettings& cfg, double lr) {
  ++step_;
  Tensor p = range(params);
  ops_.adamw_step(p, range(grads), m_, v_, AdamWHyper{{lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay}, step_});
}

void AdamWOptimizer::save(Checkpoint& ck, Comm& comm, Tensor& scratch) const {
  QSFT_CHECK(scratch.numel() == num_params_, "the optimizer's gather buffer has another size");
  for (auto [host, moment] : {std::pair{&ck.exp_avg, &m_}, std::pair{&ck.exp_avg_sq, &v_}}) {
    Tensor mine = range(scratch);
    ops_.copy(mine, *moment);
    comm.all_gather(scratch);
    if (comm.rank() != 0) continue;
    host->resize(size_t(num_params_));
    ops_.copy_to_host(host->data(), scratch.data, host->size() * sizeof(float));
  }
}

void AdamWOptimizer::load(const Checkpoint& ck) {
  for (auto [host, moment] : {std::pair{&ck.exp_avg, &m_}, std::pair{&ck.exp_avg_sq, &v_}}) {
    QSFT_CHECK(int64_t(host->size()) == num_params_, "checkpoint moments of another size");
    ops_.copy_to_device(moment->data, host->data() + shard_.offset, size_t(shard_.count) * sizeof(float));
  }
  step_ = ck.state.global_step;
}

double clip_grad_norm(Ops& ops, Tensor& grads, double max_norm, Comm& comm) {
  double sum_squares = ops.sum_squares(grads);
  comm.all_reduce_host({&sum_squares, 1});
  const double norm = std::sqrt(sum_squares);
  if (max_norm > 0) {
    const double coef = std::min(1.0, max_norm / (norm + 1e-6));  // torch clamps the coefficient at 1
    if (coef < 1.0) ops.scale_inplace(grads, float(coef));
  }
  return norm;
}

}  // namespace qsft
