// `qwen-sft plan cfg.json`: the device memory a training run will take, line by line, from the same carving the
// model and the optimizer use when they allocate, plus what the backend holds of its own (weight scratch; on cuda
// the cuBLASLt workspace, the kernels' scratch and the CUDA context); the host memory on top (an untied, frozen
// embedding mapped for the GPU, the mapped safetensors files while weights are converted, the staging of a
// checkpoint); and whether it fits.
// Every device byte but the CUDA context is what the backend really allocates (Ops::bytes_held), and the host-mapped
// embedding is what it holds of host memory (Ops::host_bytes_held): checked exactly on the cpu in
// tests/unit/plan_test.cpp and on a GPU in tests/gpu/gpu_plan_test.cpp.
#pragma once
#include <algorithm>
#include <string>

#include "engine/model/qwen2.h"
#include "engine/train/train_config.h"

namespace qsft {

// What a CUDA context with our kernels and cuBLASLt loaded takes on the device before any allocation: driver- and
// GPU-dependent (lazy module loading). Measured by tests/gpu/gpu_plan_test.cpp, which prints the value to put here:
// 526.8 MiB on an H200, driver 580.159, CUDA 13.0 (bench/gpu-runs/2026-11-30-79882bf), rounded up to 16 MiB.
constexpr size_t kCudaContextBytes = size_t(528) << 20;

// The model options a training config implies on `device` with `available` bytes (shared by the trainer and the
// plan). gradient_checkpointing "auto" keeps every layer's activations when the plan fits `available` (or when it
// is 0, unknown), else recomputes the fewest layers (the first R) that make it fit, all of them when none does.
ModelOptions model_options(const TrainConfig& cfg, Device device, size_t available, int world_size = 1);

struct TrainingPlan {
  Device device = Device::CPU;
  ModelMemory model;
  int world_size = 1;               // data-parallel ranks: each holds 1/world_size of the AdamW moments (ZeRO-1)
  size_t optimizer = 0;             // the optimizer state on one rank: its shard
  size_t weight_scratch = 0;        // QLoRA: one 4-bit weight dequantized (whole on cpu, a chunk on cuda)
  size_t gemm_workspace = 0;        // cuda: cuBLASLt's workspace
  size_t kernel_scratch = 0;        // cuda: attention backward's delta, sum_squares partials, embedding backward
  size_t comm_scratch = 0;          // cuda with world_size > 1: NCCL's host-value buffer
  size_t loss_scratch = 0;          // cuda: lm_head_ce's logits chunk and gathers, inside model.state.scratch
  size_t context = 0;               // cuda: kCudaContextBytes
  size_t comm_buffers = 0;          // cuda with world_size > 1: NCCL's own buffers (estimate: kNcclBuffersBytes)
  size_t samples = 0;               // generation_prompts (rank 0): the sample generator's arena, made at the first eval
  size_t mapped_weights = 0;        // host: the model's safetensors files, mapped while weights are converted
  size_t checkpoint_staging = 0;    // host: a checkpoint's parameters and moments (F32, 12 B/param) while saved
  bool checkpointing_auto = false;  // gradient_checkpointing "auto"
  int recomputed_layers = 0;        // R: layers [0, R) of num_layers are recomputed in the backward
  int num_layers = 0;
  bool full_finetuning = false;  // model.lora is then every weight: F32 master + grads (+ the bf16 copy on cuda)
  size_t available = 0;          // memory available (host memory on cpu); 0 = unknown

  // What the backend allocates: Ops::bytes_held() after a step.
  size_t allocated() const {
    return model.weights + model.lora + model.activations + optimizer + weight_scratch + gemm_workspace +
           kernel_scratch + comm_scratch;
  }
  // On the device: what a step holds, the context and what is not there after one step (the samples generator is
  // made at the first evaluation; NCCL's buffers are NCCL's).
  size_t total() const { return allocated() + context + comm_buffers + samples; }
  // Peak host memory: the larger of loading and saving, the host-mapped embedding, plus on cpu the device total (the
  // cpu backend's memory is the host's).
  size_t host_total() const {
    return std::max(mapped_weights, checkpoint_staging) + model.host_weights + (device == Device::CPU ? total() : 0);
  }
  bool fits() const { return available == 0 || (device == Device::CPU ? host_total() : total()) <= available; }
  std::string checkpointing() const;  // e.g. "auto: recomputes layers 0-4 (5 of 28) in the backward to fit"
  std::string report() const;
};

// The memory a plan on ops's device may take: what the backend reports free, plus on cuda the context that already
// holds its part (the plan counts it); 0 = unknown.
size_t plannable_memory(const Ops& ops);

// available_override > 0 replaces the device memory (e.g. "8" for an 8 GiB GPU, planned from a CPU machine; the
// CUDA context is part of the plan). Without it, cuda plans against the free memory the driver reports plus the
// context it already holds. The plan is per rank of a world of world_size (the largest optimizer shard).
TrainingPlan plan_training(const TrainConfig& cfg, Device device, size_t available_override, int world_size = 1);

}  // namespace qsft
