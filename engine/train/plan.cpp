#include "engine/train/plan.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "engine/train/adamw.h"

namespace qsft {

ModelOptions model_options(const TrainConfig& cfg) {
  const TrainingOptions& T = cfg.training;
  ModelOptions mo;
  // The largest micro-batch: per_device_train_batch_size bins of max_length tokens, or the token budget.
  mo.max_tokens = T.micro_batch_tokens > 0 ? std::max(T.micro_batch_tokens, cfg.data.max_length)
                                           : int64_t(T.per_device_train_batch_size) * cfg.data.max_length;
  mo.recompute = T.gradient_checkpointing;
  mo.neftune_alpha = float(T.neftune_noise_alpha);
  mo.neftune_padded_rows = !cfg.data.packing;
  mo.quant = cfg.quant.weights();
  return mo;
}

namespace {

// The backend's weight scratch (QLoRA): a 4-bit Linear dequantized in the activation dtype, the largest (the fused
// gate/up [2I, H], or q/o [n D, H] when n D > 2I) whole on the cpu, in chunks of at most kCudaWeightScratchBytes
// on cuda.
size_t weight_scratch_bytes(const Qwen2Config& m, const WeightQuant& q, Device d) {
  if (q.format == WeightFormat::dense) return 0;
  const int64_t qo = int64_t(m.num_attention_heads) * m.head_dim;
  const size_t largest = size_t(std::max(2 * m.intermediate_size, qo) * m.hidden_size);
  return d == Device::CPU ? largest * 4 : std::min(largest * 2, kCudaWeightScratchBytes);
}

}  // namespace

TrainingPlan plan_training(const TrainConfig& cfg, Device device, size_t available_override) {
  TrainingPlan p;
  p.device = device;
  const Qwen2Config mcfg = Qwen2Config::load(cfg.model);
  p.model = Qwen2Model::plan_memory(mcfg, cfg.lora, model_options(cfg), device);
  p.optimizer = AdamWOptimizer::bytes(LoraLayout(mcfg, cfg.lora).num_params());
  p.backend_scratch =
      (device == Device::CUDA ? kCudaScratchBytes : 0) + weight_scratch_bytes(mcfg, cfg.quant.weights(), device);
  for (const auto& e : std::filesystem::directory_iterator(cfg.model))
    if (e.path().extension() == ".safetensors" && e.is_regular_file()) p.mapped_weights += e.file_size();
  p.gradient_checkpointing = cfg.training.gradient_checkpointing;
  p.available = available_override;
  if (p.available == 0 && (device == Device::CPU || cuda_available()))
    p.available = (device == Device::CPU ? make_cpu_ops() : make_cuda_ops())->memory_available();
  return p;
}

std::string TrainingPlan::report() const {
  auto gib = [](size_t b) { return double(b) / double(1ull << 30); };
  char avail[64] = "unknown";
  if (available) std::snprintf(avail, sizeof avail, "%.3f GiB", gib(available));
  const std::string advice = std::string("DOES NOT FIT: lower micro_batch_tokens / batch size") +
                             (gradient_checkpointing ? "" : ", or turn on gradient_checkpointing");
  const bool cpu = device == Device::CPU;
  char buf[1280];
  std::snprintf(buf, sizeof buf,
                "memory plan on %s:\n"
                "  frozen weights          %10.3f GiB\n"
                "  LoRA params + grads     %10.3f GiB\n"
                "  AdamW moments           %10.3f GiB\n"
                "  activations + scratch   %10.3f GiB\n"
                "  backend workspace       %10.3f GiB\n"
                "  total on the %-4s       %10.3f GiB\n"
                "  mapped weight files     %10.3f GiB  (host)\n"
                "  host peak               %10.3f GiB\n"
                "  available (%-4s)    %14s\n"
                "  %s\n",
                cpu ? "cpu" : "cuda", gib(model.weights), gib(model.lora), gib(optimizer), gib(model.activations),
                gib(backend_scratch), cpu ? "cpu" : "gpu", gib(total()), gib(mapped_weights), gib(host_total()),
                cpu ? "host" : "gpu", avail,
                available == 0 ? "fits: unknown (pass --device-memory GIB)"
                : fits()       ? "fits"
                               : advice.c_str());
  return buf;
}

}  // namespace qsft
