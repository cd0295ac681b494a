#include "engine/train/plan.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "engine/train/adamw.h"

namespace qsft {

namespace {

// The options of the config with R of the first layers recomputed.
ModelOptions options_recomputing(const TrainConfig& cfg, int R) {
  const TrainingOptions& T = cfg.training;
  ModelOptions mo;
  // The largest micro-batch: per_device_train_batch_size bins of max_length tokens, or the token budget.
  mo.max_tokens = T.micro_batch_tokens > 0 ? std::max(T.micro_batch_tokens, cfg.data.max_length)
                                           : int64_t(T.per_device_train_batch_size) * cfg.data.max_length;
  mo.recompute = R > 0;
  mo.recompute_layers = R;
  mo.neftune_alpha = float(T.neftune_noise_alpha);
  mo.neftune_padded_rows = !cfg.data.packing;
  mo.full_finetuning = cfg.full_finetuning;
  mo.quant = cfg.quant.weights();
  return mo;
}

// The backend's weight scratch (QLoRA): a 4-bit Linear dequantized in the activation dtype, the largest (the fused
// gate/up [2I, H], or q/o [n D, H] when n D > 2I) whole on the cpu, in chunks of at most kCudaWeightScratchBytes
// on cuda.
size_t weight_scratch_bytes(const Qwen2Config& m, const WeightQuant& q, Device d) {
  if (q.format == WeightFormat::dense) return 0;
  const int64_t qo = int64_t(m.num_attention_heads) * m.head_dim;
  const size_t largest = size_t(std::max(2 * m.intermediate_size, qo) * m.hidden_size);
  return d == Device::CPU ? largest * 4 : std::min(largest * 2, kCudaWeightScratchBytes);
}

// The plan of the config with R recomputed layers, per rank of world_size, against `available` bytes (0 = unknown).
TrainingPlan plan_recomputing(const TrainConfig& cfg, const Qwen2Config& mcfg, Device device, size_t available, int R,
                              int world_size) {
  TrainingPlan p;
  p.device = device;
  p.world_size = world_size;
  p.model = Qwen2Model::plan_memory(mcfg, cfg.lora, options_recomputing(cfg, R), device);
  const int64_t P = cfg.full_finetuning ? FullLayout(mcfg).num_params() : LoraLayout(mcfg, cfg.lora).num_params();
  // ZeRO-1: each rank keeps the state of its shard (rank shards differ by one at most).
  p.optimizer = AdamWOptimizer::bytes((P + world_size - 1) / world_size, cfg.training.optim);
  p.backend_scratch =
      (device == Device::CUDA ? kCudaScratchBytes : 0) + weight_scratch_bytes(mcfg, cfg.quant.weights(), device);
  for (const auto& e : std::filesystem::directory_iterator(cfg.model))
    if (e.path().extension() == ".safetensors" && e.is_regular_file()) p.mapped_weights += e.file_size();
  p.checkpointing_auto = cfg.training.gradient_checkpointing_auto;
  p.recomputed_layers = R;
  p.num_layers = mcfg.num_hidden_layers;
  p.full_finetuning = cfg.full_finetuning;
  p.available = available;
  return p;
}

// R for the config: its own setting, or with "auto" the fewest layers whose plan fits (each layer's saved
// activations are the same size, so the plans shrink as R grows). On the GPU "auto" keeps 1 GiB + 1/32 of the
// memory free for what the plan does not count: the backend's growable scratch (the cross-entropy logits block,
// attention's backward buffers) and the allocator's slack.
int layers_to_recompute(const TrainConfig& cfg, const Qwen2Config& mcfg, Device device, size_t available,
                        int world_size) {
  const int L = mcfg.num_hidden_layers;
  if (!cfg.training.gradient_checkpointing_auto) return cfg.training.gradient_checkpointing ? L : 0;
  if (available == 0) return 0;
  const size_t reserve = device == Device::CUDA ? (size_t(1) << 30) + available / 32 : 0;
  const size_t budget = available > reserve ? available - reserve : 1;
  for (int R = 0; R < L; ++R)
    if (plan_recomputing(cfg, mcfg, device, budget, R, world_size).fits()) return R;
  return L;
}

}  // namespace

ModelOptions model_options(const TrainConfig& cfg, Device device, size_t available, int world_size) {
  const Qwen2Config mcfg = Qwen2Config::load(cfg.model);
  return options_recomputing(cfg, layers_to_recompute(cfg, mcfg, device, available, world_size));
}

TrainingPlan plan_training(const TrainConfig& cfg, Device device, size_t available_override, int world_size) {
  size_t available = available_override;
  if (available == 0 && (device == Device::CPU || cuda_available()))
    available = (device == Device::CPU ? make_cpu_ops() : make_cuda_ops())->memory_available();
  const Qwen2Config mcfg = Qwen2Config::load(cfg.model);
  const int R = layers_to_recompute(cfg, mcfg, device, available, world_size);
  return plan_recomputing(cfg, mcfg, device, available, R, world_size);
}

// What the plan does with the layers' activations, e.g. "auto: recomputes layers 0-4 (5 of 28) to fit".
std::string TrainingPlan::checkpointing() const {
  const std::string mode = checkpointing_auto ? "auto" : recomputed_layers > 0 ? "on" : "off";
  if (recomputed_layers == 0) return mode + ": keeps the activations of all " + std::to_string(num_layers) + " layers";
  const std::string which = recomputed_layers == 1 ? "layer 0" : "layers 0-" + std::to_string(recomputed_layers - 1);
  return mode + ": recomputes " + which + " (" + std::to_string(recomputed_layers) + " of " +
         std::to_string(num_layers) + ") in the backward" +
         (checkpointing_auto ? (recomputed_layers < num_layers ? " to fit" : ", the most it can") : "");
}

std::string TrainingPlan::report() const {
  auto gib = [](size_t b) { return double(b) / double(1ull << 30); };
  char avail[64] = "unknown";
  if (available) std::snprintf(avail, sizeof avail, "%.3f GiB", gib(available));
  std::string advice = std::string("DOES NOT FIT: lower micro_batch_tokens / batch size") +
                       (recomputed_layers < num_layers ? ", or turn on gradient_checkpointing" : "");
  if (full_finetuning) advice += " (full fine-tuning keeps 18 bytes per weight on the GPU: or train LoRA)";
  const bool cpu = device == Device::CPU;
  char ranks[96] = "";
  if (world_size > 1)
    std::snprintf(ranks, sizeof ranks, ", per rank of %d (AdamW moments sharded: ZeRO-1)", world_size);
  char buf[1400];
  std::snprintf(buf, sizeof buf,
                "memory plan on %s%s:\n"
                "  frozen weights          %10.3f GiB\n"
                "  %-23s %10.3f GiB\n"
                "  AdamW moments           %10.3f GiB\n"
                "  activations + scratch   %10.3f GiB\n"
                "  backend workspace       %10.3f GiB\n"
                "  total on the %-4s       %10.3f GiB\n"
                "  mapped weight files     %10.3f GiB  (host)\n"
                "  host peak               %10.3f GiB\n"
                "  available (%-4s)    %14s\n"
                "  gradient checkpointing  %s\n"
                "  %s\n",
                cpu ? "cpu" : "cuda", ranks, gib(model.weights),
                full_finetuning ? "all weights + grads" : "LoRA params + grads", gib(model.lora), gib(optimizer),
                gib(model.activations), gib(backend_scratch), cpu ? "cpu" : "gpu", gib(total()), gib(mapped_weights),
                gib(host_total()), cpu ? "host" : "gpu", avail, checkpointing().c_str(),
                available == 0 ? "fits: unknown (pass --device-memory GIB)"
                : fits()       ? "fits"
                               : advice.c_str());
  return buf;
}

}  // namespace qsft
