// `qwen-sft plan cfg.json`: the device memory a training run will take, from the same carving the model and the
// optimizer use when they allocate (so the plan is what the arenas get), and whether it fits.
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
  size_t available = 0;        // device memory available; 0 = unknown
  size_t total() const { return model.weights + model.lora + model.activations + optimizer + backend_scratch; }
  bool fits() const { return available == 0 || total() <= available; }
  std::string report() const;
};

// available_override > 0 replaces the measured device memory (e.g. to plan for a GPU from a CPU machine).
TrainingPlan plan_training(const TrainConfig& cfg, Device device, size_t available_override);

}  // namespace qsft
