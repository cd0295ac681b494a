// `qwen-sft plan cfg.json`: the device memory a training run will take, from the same carving the model and the
// optimizer use when they allocate (so the plan is what the arenas get), the host memory on top (the mapped
// safetensors files: a 0.5B CPU run peaked at 3.1 GiB for a 2.0 GiB device plan plus 0.99 GB of bf16 files), and
// whether it fits.
#pragma once
#include <string>

#include "engine/model/qwen2.h"
#include "engine/train/train_config.h"

namespace qsft {

// The model options a training config implies on `device` with `available` bytes (shared by the trainer and the
// plan). gradient_checkpointing "auto" keeps every layer's activations when the plan fits `available` (or when it
// is 0, unknown), else recomputes the fewest layers (the first R) that make it fit, all of them when none does.
ModelOptions model_options(const TrainConfig& cfg, Device device, size_t available, int world_size = 1);

struct TrainingPlan {
  Device device = Device::CPU;
  ModelMemory model;
  int world_size = 1;               // data-parallel ranks: each holds 1/world_size of the AdamW moments (ZeRO-1)
  size_t optimizer = 0;             // the optimizer state on one rank: its shard
  size_t backend_scratch = 0;       // the backend's own buffers: cuBLASLt workspace on cuda; QLoRA's weight scratch
  size_t mapped_weights = 0;        // host: the model's safetensors files, mapped and read while weights are converted
  bool checkpointing_auto = false;  // gradient_checkpointing "auto"
  int recomputed_layers = 0;        // R: layers [0, R) of num_layers are recomputed in the backward
  int num_layers = 0;
  bool full_finetuning = false;  // model.lora is then every weight: F32 master + grads (+ the bf16 copy on cuda)
  size_t available = 0;  // memory available (host memory on cpu); 0 = unknown
  size_t total() const { return model.weights + model.lora + model.activations + optimizer + backend_scratch; }
  // Peak host memory: the mapped files, plus on cpu all of the above (the cpu backend's memory is the host's).
  size_t host_total() const { return mapped_weights + (device == Device::CPU ? total() : 0); }
  bool fits() const { return available == 0 || (device == Device::CPU ? host_total() : total()) <= available; }
  std::string checkpointing() const;  // e.g. "auto: recomputes layers 0-4 (5 of 28) in the backward to fit"
  std::string report() const;
};

// available_override > 0 replaces the measured device memory (e.g. to plan for a GPU from a CPU machine). The plan
// is per rank of a world of world_size (the largest optimizer shard).
TrainingPlan plan_training(const TrainConfig& cfg, Device device, size_t available_override, int world_size = 1);

}  // namespace qsft
