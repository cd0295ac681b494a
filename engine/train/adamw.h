// AdamW over the flat F32 parameter buffer, in one of TRL's optim choices: "adamw_torch" (torch.optim.AdamW, fp32
// moments) or "adamw_8bit" (bitsandbytes' 8-bit blockwise state, kernels/adamw8bit.h: one byte per parameter and
// moment, plus an fp32 absmax per block of 256). The math is in Ops::adamw_step / adamw8bit_step. Plus gradient
// clipping by total norm as torch.nn.utils.clip_grad_norm_ does it.
// Data parallel (ZeRO-1): each rank keeps the state of its shard of the flat buffer only and updates that range of
// the parameters; checkpoints hold the whole state (gathered at save, a shard taken at load), so a run resumes on
// any world size. Every state buffer is flat in the parameters' order, so the shard [a, b) owns the state [a, b)
// (and for adamw_8bit the blocks [a / 256, ceil(b / 256)): its shards start on blocks of 256, Comm::align_shards).
#pragma once
#include <string>
#include <vector>

#include "engine/arena.h"
#include "engine/dist/comm.h"
#include "engine/ops.h"
#include "engine/train/checkpoint.h"

namespace qsft {

class AdamWOptimizer {
 public:
  // optim: "adamw_torch" or "adamw_8bit" (train_config's names); the state of `shard` only (ZeRO-1). Weight decay
  // applies to the parameters [0, decay_end) only (-1: all of them); the rest get none (full fine-tuning:
  // transformers' Trainer exempts biases and norm weights, FullLayout puts them last). Each group is applied to its
  // intersection with the shard; adamw_8bit steps its whole shard in one call, the decay ending at decay_end (its
  // blocks of 256 need not align with it: the weight decay is per parameter, the absmax per block).
  AdamWOptimizer(Ops& ops, int64_t num_params, ShardRange shard, const std::string& optim = "adamw_torch",
                 int64_t decay_end = -1);
  AdamWOptimizer(Ops& ops, int64_t num_params, const std::string& optim = "adamw_torch")
      : AdamWOptimizer(ops, num_params, {0, num_params}, optim) {}
  AdamWOptimizer(Ops& ops, int64_t num_params, int64_t decay_end)
      : AdamWOptimizer(ops, num_params, {0, num_params}, "adamw_torch", decay_end) {}
  static size_t bytes(int64_t shard_params, const std::string& optim = "adamw_torch");  // the state it allocates
  // The block every shard must start on (Comm::align_shards): 256 for adamw_8bit, else 1.
  static int64_t shard_alignment(const std::string& optim) { return optim == "adamw_8bit" ? cpu::kAdamW8bitBlock : 1; }
  // One update of the shard's range of the flat F32 [P] params at learning rate lr (the scheduler's value for this
  // step), from that range of grads; the step counter advances first.
  void step(Tensor& params, const Tensor& grads, const AdamWSettings& cfg, double lr);
  // The whole state into ck (host copies) on rank 0 (the others' stay empty): exp_avg / exp_avg_sq, or for
  // adamw_8bit their codes and absmax (the same bytes on any world size). Every rank's shard goes through
  // `scratch`, an F32 [P] device buffer free to overwrite (the gradients, after the step), and comm's all_gather
  // (whose shard map is this optimizer's): a collective, every rank calls it.
  void save(Checkpoint& ck, Comm& comm, Tensor& scratch) const;
  // This rank's shard of a checkpoint's whole state, and its step count (the bias corrections continue).
  void load(const Checkpoint& ck);

 private:
  Tensor range(const Tensor& flat) const { return flat.rows(shard_.offset, shard_.offset + shard_.count); }
  template <class T>
  void gather_8bit(std::vector<T>& host, const Tensor& piece, int64_t per, Comm& comm, Tensor& scratch) const;
  Ops& ops_;
  int64_t num_params_;
  ShardRange shard_;
  bool eight_bit_;
  Arena arena_;
  Tensor m_, v_;        // adamw_torch: F32 [shard count], first and second moments
  AdamW8bitMoments q_;  // adamw_8bit: codes, absmax and maps
  int64_t decay_end_;
  int64_t step_ = 0;
};

// Total L2 norm of the gradients (deterministic), returned before clipping: `grads` is this rank's shard, the sum
// of squares is summed over comm's ranks. When max_norm > 0, the gradients are scaled by
// min(1, max_norm / (norm + 1e-6)).
double clip_grad_norm(Ops& ops, Tensor& grads, double max_norm, Comm& comm);

}  // namespace qsft
