// `qwen-sft plan cfg.json`: the device memory a training run will take, from the same carving the model and the
// optimizer use when they allocate (so the plan is what the arenas get), the host memory on top (the mapped
// safetensors files: a 0.5B CPU run peaked at 3.1 GiB for a 2.0 GiB device plan plus 0.99 GB of bf16 files), and
// whether it fits.
#pragma once
#include <string>

#include "engine/model/qwen2.h"
#include "engine/train/train_config.h"

namespace qsft {

// The model options a training config implies (shared by the trainer and the plan).
ModelOptions model_options(const TrainConfig& cfg);

struct TrainingPlan {
  Device device = Device::CPU;
  ModelMemory model;
  size_t optimizer = 0;        // AdamW moments (F32)
  size_t backend_scratch = 0;  // the backend's own buffers (cuBLASLt workspace on cuda)
  size_t mapped_weights = 0;   // host: the model's safetensors files, mapped and read while weights are converted
  bool gradient_checkpointing = false;
  bool full_finetuning = false;  // model.lora is then every weight: F32 master + grads (+ the bf16 copy on cuda)
  size_t available = 0;  // memory available (host memory on cpu); 0 = unknown
  size_t total() const { return model.weights + model.lora + model.activations + optimizer + backend_scratch; }
  // Peak host memory: the mapped files, plus on cpu all of the above (the cpu backend's memory is the host's).
  size_t host_total() const { return mapped_weights + (device == Device::CPU ? total() : 0); }
  bool fits() const { return available == 0 || (device == Device::CPU ? host_total() : total()) <= available; }
  std::string report() const;
};

// available_override > 0 replaces the measured device memory (e.g. to plan for a GPU from a CPU machine).
TrainingPlan plan_training(const TrainConfig& cfg, Device device, size_t available_override);

}  // namespace qsft
