// AdamW over the flat F32 LoRA buffer (torch.optim.AdamW semantics; the math is in Ops::adamw_step), plus
// gradient clipping by total norm as torch.nn.utils.clip_grad_norm_ does it. Data parallel (ZeRO-1): each rank
// keeps the moments of its shard of the flat buffer only and updates that range of the parameters; checkpoints
// hold the whole moments (gathered at save, a shard taken at load), so a run resumes on any world size.
#pragma once
#include "engine/arena.h"
#include "engine/dist/comm.h"
#include "engine/ops.h"
#include "engine/train/checkpoint.h"

namespace qsft {

class AdamWOptimizer {
 public:
  AdamWOptimizer(Ops& ops, int64_t num_params) : AdamWOptimizer(ops, num_params, {0, num_params}) {}
  AdamWOptimizer(Ops& ops, int64_t num_params, ShardRange shard);  // the moments of `shard` only (ZeRO-1)
  static size_t bytes(int64_t shard_params) { return 2 * (size_t(shard_params) * 4 + Arena::kAlign); }  // m and v
  // One update of the shard's range of the flat F32 [P] params at learning rate lr (the scheduler's value for this
  // step), from that range of grads; the step counter advances first.
  void step(Tensor& params, const Tensor& grads, const AdamWSettings& cfg, double lr);
  // The whole moments into ck.exp_avg / ck.exp_avg_sq (host) on rank 0 (the others' stay empty). Every rank's
  // shard goes through `scratch`, an F32 [P] device buffer free to overwrite (the gradients, after the step), and
  // comm's all_gather: a collective, every rank calls it.
  void save(Checkpoint& ck, Comm& comm, Tensor& scratch) const;
  // This rank's shard of a checkpoint's whole moments, and its step count (the bias corrections continue).
  void load(const Checkpoint& ck);

 private:
  Tensor range(const Tensor& flat) const { return flat.rows(shard_.offset, shard_.offset + shard_.count); }
  Ops& ops_;
  int64_t num_params_;
  ShardRange shard_;
  Arena arena_;
  Tensor m_, v_;  // F32 [shard count], first and second moments
  int64_t step_ = 0;
};

// Total L2 norm of the gradients (deterministic), returned before clipping: `grads` is this rank's shard, the sum
// of squares is summed over comm's ranks. When max_norm > 0, the gradients are scaled by
// min(1, max_norm / (norm + 1e-6)).
double clip_grad_norm(Ops& ops, Tensor& grads, double max_norm, Comm& comm);

}  // namespace qsft
