// AdamW over the flat F32 LoRA buffer (torch.optim.AdamW semantics; the math is in Ops::adamw_step), plus
// gradient clipping by total norm as torch.nn.utils.clip_grad_norm_ does it.
#pragma once
#include "engine/arena.h"
#include "engine/ops.h"
#include "engine/train/checkpoint.h"

namespace qsft {

class AdamWOptimizer {
 public:
  // Weight decay applies to the parameters [0, decay_end) only (-1: all of them); the rest get none (full
  // fine-tuning: transformers' Trainer exempts biases and norm weights, FullLayout puts them last).
  AdamWOptimizer(Ops& ops, int64_t num_params, int64_t decay_end = -1);
  static size_t bytes(int64_t num_params) { return 2 * (size_t(num_params) * 4 + Arena::kAlign); }  // m and v
  // One update at learning rate lr (the scheduler's value for this step); the step counter advances first.
  void step(Tensor& params, const Tensor& grads, const AdamWSettings& cfg, double lr);
  // The moments into ck.exp_avg / ck.exp_avg_sq (host copies), for a checkpoint.
  void save(Checkpoint& ck) const;
  // The moments of a checkpoint, and its step count (the bias corrections continue from there).
  void load(const Checkpoint& ck);

 private:
  Ops& ops_;
  Arena arena_;
  Tensor m_, v_;  // F32 [P], first and second moments
  int64_t decay_end_;
  int64_t step_ = 0;
};

// Total L2 norm of the gradients (deterministic), returned before clipping. When max_norm > 0, the gradients are
// scaled by min(1, max_norm / (norm + 1e-6)).
double clip_grad_norm(Ops& ops, Tensor& grads, double max_norm);

}  // namespace qsft
