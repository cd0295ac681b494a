#include "engine/train/plan.h"

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
  mo.full_finetuning = cfg.full_finetuning;
  return mo;
}

TrainingPlan plan_training(const TrainConfig& cfg, Device device, size_t available_override) {
  TrainingPlan p;
  p.device = device;
  const Qwen2Config mcfg = Qwen2Config::load(cfg.model);
  p.model = Qwen2Model::plan_memory(mcfg, cfg.lora, model_options(cfg), device);
  const int64_t trainable =
      cfg.full_finetuning ? FullLayout(mcfg).num_params() : LoraLayout(mcfg, cfg.lora).num_params();
  p.optimizer = AdamWOptimizer::bytes(trainable);
  p.backend_scratch = device == Device::CUDA ? kCudaScratchBytes : 0;
  for (const auto& e : std::filesystem::directory_iterator(cfg.model))
    if (e.path().extension() == ".safetensors" && e.is_regular_file()) p.mapped_weights += e.file_size();
  p.gradient_checkpointing = cfg.training.gradient_checkpointing;
  p.full_finetuning = cfg.full_finetuning;
  p.available = available_override;
  if (p.available == 0 && (device == Device::CPU || cuda_available()))
    p.available = (device == Device::CPU ? make_cpu_ops() : make_cuda_ops())->memory_available();
  return p;
}

std::string TrainingPlan::report() const {
  auto gib = [](size_t b) { return double(b) / double(1ull << 30); };
  char avail[64] = "unknown";
  if (available) std::snprintf(avail, sizeof avail, "%.3f GiB", gib(available));
  std::string advice = std::string("DOES NOT FIT: lower micro_batch_tokens / batch size") +
                       (gradient_checkpointing ? "" : ", or turn on gradient_checkpointing");
  if (full_finetuning) advice += " (full fine-tuning keeps 18 bytes per weight on the GPU: or train LoRA)";
  const bool cpu = device == Device::CPU;
  char buf[1280];
  std::snprintf(buf, sizeof buf,
                "memory plan on %s:\n"
                "  frozen weights          %10.3f GiB\n"
                "  %-23s %10.3f GiB\n"
                "  AdamW moments           %10.3f GiB\n"
                "  activations + scratch   %10.3f GiB\n"
                "  backend workspace       %10.3f GiB\n"
                "  total on the %-4s       %10.3f GiB\n"
                "  mapped weight files     %10.3f GiB  (host)\n"
                "  host peak               %10.3f GiB\n"
                "  available (%-4s)    %14s\n"
                "  %s\n",
                cpu ? "cpu" : "cuda", gib(model.weights),
                full_finetuning ? "all weights + grads" : "LoRA params + grads", gib(model.lora), gib(optimizer),
                gib(model.activations), gib(backend_scratch), cpu ? "cpu" : "gpu", gib(total()), gib(mapped_weights),
                gib(host_total()), cpu ? "host" : "gpu", avail,
                available == 0 ? "fits: unknown (pass --device-memory GIB)"
                : fits()       ? "fits"
                               : advice.c_str());
  return buf;
}

}  // namespace qsft
