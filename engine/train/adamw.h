// AdamW over the flat F32 parameter buffer, in one of TRL's optim choices: "adamw_torch" (torch.optim.AdamW, fp32
// moments) or "adamw_8bit" (bitsandbytes' 8-bit blockwise state, kernels/adamw8bit.h: one byte per parameter and
// moment, plus an fp32 absmax per block of 256). The math is in Ops::adamw_step / adamw8bit_step. Every state
// buffer is flat in the parameters' order, so a ZeRO-1 shard of the parameters [a, b) owns the state [a, b) (and
// blocks [a / 256, b / 256) when a is a multiple of 256). Plus gradient clipping by total norm as
// torch.nn.utils.clip_grad_norm_ does it.
#pragma once
#include <string>

#include "engine/arena.h"
#include "engine/ops.h"
#include "engine/train/checkpoint.h"

namespace qsft {

class AdamWOptimizer {
 public:
  // optim: "adamw_torch" or "adamw_8bit" (train_config's names).
  AdamWOptimizer(Ops& ops, int64_t num_params, const std::string& optim = "adamw_torch");
  static size_t bytes(int64_t num_params, const std::string& optim = "adamw_torch");  // the state it allocates
  // One update at learning rate lr (the scheduler's value for this step); the step counter advances first.
  void step(Tensor& params, const Tensor& grads, const AdamWSettings& cfg, double lr);
  // The moments into ck (host copies): exp_avg / exp_avg_sq, or for adamw_8bit their codes and absmax.
  void save(Checkpoint& ck) const;
  // The moments of a checkpoint, and its step count (the bias corrections continue from there).
  void load(const Checkpoint& ck);

 private:
  Ops& ops_;
  bool eight_bit_;
  Arena arena_;
  Tensor m_, v_;        // adamw_torch: F32 [P]
  AdamW8bitMoments q_;  // adamw_8bit: codes, absmax and maps
  int64_t step_ = 0;
};

// Total L2 norm of the gradients (deterministic), returned before clipping. When max_norm > 0, the gradients are
// scaled by min(1, max_norm / (norm + 1e-6)).
double clip_grad_norm(Ops& ops, Tensor& grads, double max_norm);

}  // namespace qsft
