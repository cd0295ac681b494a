// One training step's allocations, for checking `qwen-sft plan` against the backend (tests/unit/plan_test.cpp on
// the cpu, tests/gpu/gpu_plan_test.cpp on a GPU): the model and the optimizer of cfg built on `ops` as the trainer
// builds them (one rank of world_size: its optimizer shard), one forward/backward over a micro-batch of the planned
// max_tokens (the largest: the growable scratch reaches its size), the norms the trainer takes, one AdamW step.
#pragma once
#include <vector>

#include "engine/train/adamw.h"
#include "engine/train/plan.h"

namespace qsft::test {

// What the backend holds after the step (the model and optimizer still alive): Ops::bytes_held() on the device,
// Ops::host_bytes_held() of host-mapped memory, and `used`: what the caller's device_used() reports at that moment
// (a GPU's cudaMemGetInfo: the context included; 0 without one).
struct HeldBytes {
  size_t device = 0, host = 0, used = 0;
};
inline HeldBytes bytes_after_a_step(Ops& ops, const TrainConfig& cfg, size_t available, int world_size,
                                    size_t (*device_used)() = nullptr) {
  const Qwen2Config mcfg = Qwen2Config::load(cfg.model);
  const ModelOptions mo = model_options(cfg, ops.device(), available, world_size);
  Qwen2Model model(ops, mcfg, cfg.lora, mo);
  const int64_t P = model.param_layout().num_params(), shard = (P + world_size - 1) / world_size;
  AdamWOptimizer opt(ops, P, {0, shard}, cfg.training.optim);
  const int64_t T = mo.max_tokens, V = mcfg.vocab_size;
  const size_t n = size_t(T);
  std::vector<int32_t> ids(n), targets(n), positions(n), cu = {0, int32_t(T)};
  int64_t trained = 0;
  for (int32_t t = 0; t < int32_t(T); ++t) {
    ids[size_t(t)] = int32_t((7 * int64_t(t) + 3) % V);
    targets[size_t(t)] = t % 3 ? int32_t((5 * int64_t(t) + 1) % V) : -100;
    trained += t % 3 != 0;
    positions[size_t(t)] = t;
  }
  const TokenBatchView b{ids, targets, positions, cu, int(T), trained};
  model.forward_backward(b, 1.0f / float(trained), 1);
  ops.sum_squares(model.lora_grad_tensor());  // the gradient norm (clip_grad_norm) and the finite check's
  opt.step(model.lora_param_tensor(), model.lora_grad_tensor(), cfg.training.adamw, 1e-3);
  ops.synchronize();
  return {ops.bytes_held(), ops.host_bytes_held(), device_used ? device_used() : 0};
}

}  // namespace qsft::test
