#include "engine/train/adamw.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <tuple>
#include <utility>

#include "engine/base/error.h"

namespace qsft {

namespace {

int64_t blocks_of(int64_t num_params) { return (num_params + cpu::kAdamW8bitBlock - 1) / cpu::kAdamW8bitBlock; }

// The state's tensors, carved from `a` (a measuring arena counts the bytes): F32 moments, or the 8-bit ones.
void carve_state(Arena& a, int64_t P, bool eight_bit, Tensor& m, Tensor& v, AdamW8bitMoments& q) {
  if (!eight_bit) {
    m = a.take(DType::F32, {P});
    v = a.take(DType::F32, {P});
    return;
  }
  q.m = a.take(DType::U8, {P});
  q.v = a.take(DType::U8, {P});
  q.absmax_m = a.take(DType::F32, {blocks_of(P)});
  q.absmax_v = a.take(DType::F32, {blocks_of(P)});
  q.map_m = a.take(DType::F32, {256});
  q.map_v = a.take(DType::F32, {256});
}

bool is_eight_bit(const std::string& optim) {
  QSFT_CHECK(optim == "adamw_torch" || optim == "adamw_8bit", "unknown optim " + optim);
  return optim == "adamw_8bit";
}

InputError state_mismatch(const char* what) {
  return input_error("optimizer.safetensors", std::string("the checkpoint's ") + what +
                                                  " is of another size or optimizer (is training.optim the one the "
                                                  "checkpoint was trained with?)");
}

// This shard's part of a whole state vector `host` with one entry per `per` parameters (codes: 1, absmax: 256):
// entries [offset / per, ...) into t (the shard starts on a block boundary).
template <class T>
void to_device(Ops& ops, const std::vector<T>& host, Tensor& t, int64_t total, ShardRange shard, int64_t per,
               const char* what) {
  if (int64_t(host.size()) != total) throw state_mismatch(what);
  ops.copy_to_device(t.data, host.data() + shard.offset / per, size_t(t.numel()) * sizeof(T));
}

}  // namespace

size_t AdamWOptimizer::bytes(int64_t shard_params, const std::string& optim) {
  Arena measure;
  Tensor m, v;
  AdamW8bitMoments q;
  carve_state(measure, shard_params, is_eight_bit(optim), m, v, q);
  return measure.used();
}

AdamWOptimizer::AdamWOptimizer(Ops& ops, int64_t num_params, ShardRange shard, const std::string& optim,
                               int64_t decay_end)
    : ops_(ops),
      num_params_(num_params),
      shard_(shard),
      eight_bit_(is_eight_bit(optim)),
      arena_(ops, bytes(shard.count, optim)),
      decay_end_(decay_end < 0 ? num_params : decay_end) {
  QSFT_CHECK(decay_end_ <= num_params, "weight-decay range beyond the parameters");
  QSFT_CHECK(!eight_bit_ || shard.offset % cpu::kAdamW8bitBlock == 0,
             "adamw_8bit's shard must start on a block of 256 (Comm::align_shards)");
  carve_state(arena_, shard.count, eight_bit_, m_, v_, q_);
  if (!eight_bit_) return;
  const std::array<float, 256> map_m = cpu::dynamic_map(true), map_v = cpu::dynamic_map(false);
  ops_.copy_to_device(q_.map_m.data, map_m.data(), sizeof map_m);
  ops_.copy_to_device(q_.map_v.data, map_v.data(), sizeof map_v);
}

void AdamWOptimizer::step(Tensor& params, const Tensor& grads, const AdamWSettings& cfg, double lr) {
  ++step_;
  const AdamWHyper h{{lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay}, step_};
  if (eight_bit_) {  // one call over the shard's blocks; the decay group ends at d inside it (maybe in a block)
    Tensor p = range(params);
    const int64_t decayed = std::clamp(decay_end_ - shard_.offset, int64_t(0), shard_.count);
    return ops_.adamw8bit_step(p, range(grads), q_, h, decayed);
  }
  // Two groups: [0, d) with weight decay, [d, P) without, each intersected with the shard [s0, s1).
  const int64_t P = num_params_, d = decay_end_, s0 = shard_.offset, s1 = shard_.offset + shard_.count;
  for (auto [a, b, wd] : {std::tuple{int64_t(0), d, cfg.weight_decay}, std::tuple{d, P, 0.0}}) {
    const int64_t lo = std::max(a, s0), hi = std::min(b, s1);
    if (lo >= hi) continue;
    Tensor p = params.rows(lo, hi), m = m_.rows(lo - s0, hi - s0), v = v_.rows(lo - s0, hi - s0);
    AdamWHyper hg = h;
    hg.weight_decay = wd;
    ops_.adamw_step(p, grads.rows(lo, hi), m, v, hg);
  }
}

// One piece of the 8-bit state (`per` = 1: codes, one per parameter; 256: absmax, one per block) gathered whole on
// rank 0: each rank puts its shard's piece at the start of its own range of `scratch` (it fits: at most 4 bytes per
// parameter), the F32 all_gather moves those bytes unchanged, and rank 0 reads rank q's piece at rank q's range.
template <class T>
void AdamWOptimizer::gather_8bit(std::vector<T>& host, const Tensor& piece, int64_t per, Comm& comm,
                                 Tensor& scratch) const {
  auto at = [](const Tensor& t, int64_t offset) { return static_cast<std::byte*>(t.data) + 4 * offset; };
  Tensor mine(at(scratch, shard_.offset), piece.dtype, {piece.numel()}, scratch.device);
  ops_.copy(mine, piece);
  comm.all_gather(scratch);
  if (comm.rank() != 0) return;
  std::vector<float> all(static_cast<size_t>(num_params_));
  ops_.copy_to_host(all.data(), scratch.data, all.size() * sizeof(float));
  host.resize(size_t((num_params_ + per - 1) / per));
  for (int q = 0; q < comm.world_size(); ++q) {
    const ShardRange r = comm.shard(num_params_, q);
    const int64_t n = (r.count + per - 1) / per;
    std::memcpy(host.data() + r.offset / per, reinterpret_cast<std::byte*>(all.data()) + 4 * r.offset,
                size_t(n) * sizeof(T));
  }
}

void AdamWOptimizer::save(Checkpoint& ck, Comm& comm, Tensor& scratch) const {
  QSFT_CHECK(scratch.numel() == num_params_, "the optimizer's gather buffer has another size");
  QSFT_CHECK(comm.shard(num_params_).offset == shard_.offset, "the optimizer's shard is not the Comm's");
  if (eight_bit_) {
    gather_8bit(ck.exp_avg_codes, q_.m, 1, comm, scratch);
    gather_8bit(ck.exp_avg_sq_codes, q_.v, 1, comm, scratch);
    gather_8bit(ck.exp_avg_absmax, q_.absmax_m, cpu::kAdamW8bitBlock, comm, scratch);
    gather_8bit(ck.exp_avg_sq_absmax, q_.absmax_v, cpu::kAdamW8bitBlock, comm, scratch);
    return;
  }
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
  if (eight_bit_) {
    const int64_t P = num_params_, B = blocks_of(P), block = cpu::kAdamW8bitBlock;
    to_device(ops_, ck.exp_avg_codes, q_.m, P, shard_, 1, "exp_avg (8-bit codes)");
    to_device(ops_, ck.exp_avg_sq_codes, q_.v, P, shard_, 1, "exp_avg_sq (8-bit codes)");
    to_device(ops_, ck.exp_avg_absmax, q_.absmax_m, B, shard_, block, "exp_avg_absmax");
    to_device(ops_, ck.exp_avg_sq_absmax, q_.absmax_v, B, shard_, block, "exp_avg_sq_absmax");
  } else {
    for (auto [host, moment, name] : {std::tuple{&ck.exp_avg, &m_, "exp_avg"}, {&ck.exp_avg_sq, &v_, "exp_avg_sq"}}) {
      if (int64_t(host->size()) != num_params_) throw state_mismatch(name);
      ops_.copy_to_device(moment->data, host->data() + shard_.offset, size_t(shard_.count) * sizeof(float));
    }
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
