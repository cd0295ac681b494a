#include "engine/train/plan.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "engine/dist/comm.h"
#include "engine/generate/training_samples.h"
#include "engine/io/bnb_checkpoint.h"
#include "engine/train/adamw.h"
#include "kernels/cross_entropy_scratch.h"
#include "kernels/reduce.h"

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
  mo.embedding_on_host = mo.embedding_on_host && T.embedding_on_host;  // the environment's default, or the config's
  return mo;
}

// The backend's weight scratch (QLoRA): the largest chunk of a 4-bit Linear dequantized in the activation dtype
// (Ops::quant_chunk_rows): each weight whole on the cpu (F32), chunks of at most kCudaWeightScratchBytes on cuda.
size_t weight_scratch_bytes(const Qwen2Config& m, const WeightQuant& q, Device d) {
  if (q.format == WeightFormat::dense) return 0;
  const int64_t H = m.hidden_size, I = m.intermediate_size, D = m.head_dim;
  const int64_t qo = int64_t(m.num_attention_heads) * D, kvo = int64_t(m.num_key_value_heads) * D;
  const size_t es = d == Device::CPU ? 4 : 2, limit = d == Device::CPU ? SIZE_MAX : kCudaWeightScratchBytes;
  size_t largest = 0;
  for (auto [out, in] : {std::pair{qo + 2 * kvo, H}, {H, qo}, {2 * I, H}, {H, I}})  // qkv, o, gate_up, down
    largest = std::max(largest, size_t(Ops::quant_chunk_rows(out, in, es, limit) * in) * es);
  return largest;
}

// The cuda kernels' own scratch buffers, each as large as its largest request (kernels/*_cuda.h): attention
// backward's delta F32 [n, T] (deterministic mode; QSFT_ATTENTION_BWD=atomic adds an F32 dQ [T, n, D]),
// sum_squares' partials (a double per kReduceBlock of the P parameters, + 1), and with full fine-tuning the
// embedding backward's grouping of the T ids (3T + 1 I32).
size_t cuda_kernel_scratch_bytes(const Qwen2Config& m, int64_t T, int64_t P, bool full_finetuning) {
  const size_t delta = (size_t(m.num_attention_heads * T) * 4 + 255) / 256 * 256;
  const size_t partials = size_t((P + cpu::kReduceBlock - 1) / cpu::kReduceBlock + 1) * sizeof(double);
  return delta + partials + (full_finetuning ? size_t(3 * T + 1) * 4 : 0);
}

// NCCL's own buffers on each GPU with world_size > 1, an estimate until a multi-GPU run measures them: NCCL_BUFFSIZE
// (4 MiB) per protocol and direction for each channel of each connection, and more with NVLS on NVSwitch systems.
constexpr size_t kNcclBuffersBytes = size_t(512) << 20;

// The generator generation_prompts makes at the first evaluation (rank 0 only): its KV cache and step tensors, for
// the prompts as encoded (decode attention's split partials, ~1 MiB on cuda, are left to the reserve).
size_t samples_bytes(const TrainConfig& cfg, const Qwen2Config& mcfg, Device device) {
  if (cfg.generation_prompts.empty()) return 0;
  const ModelOptions mo = options_recomputing(cfg, 0);
  const TrainingSamples s(cfg.generation_prompts, cfg.model, cfg.data.chat_format, mo.max_tokens);
  return s.device_bytes(mcfg, device == Device::CPU ? DType::F32 : DType::BF16);
}

// The plan of the config with R recomputed layers, per rank of world_size, against `available` bytes (0 = unknown);
// samples: samples_bytes().
TrainingPlan plan_recomputing(const TrainConfig& cfg, const Qwen2Config& mcfg, Device device, size_t available, int R,
                              int world_size, size_t samples) {
  TrainingPlan p;
  p.device = device;
  p.world_size = world_size;
  const ModelOptions mo = options_recomputing(cfg, R);
  p.model = Qwen2Model::plan_memory(mcfg, cfg.lora, mo, device);
  const int64_t P = cfg.full_finetuning ? FullLayout(mcfg).num_params() : LoraLayout(mcfg, cfg.lora).num_params();
  // ZeRO-1: each rank keeps the state of its shard; the plan is the largest one's (adamw_8bit: whole 256-blocks).
  int64_t largest_shard = 0;
  for (int q = 0; q < world_size; ++q)
    largest_shard =
        std::max(largest_shard, shard_of(P, world_size, q, AdamWOptimizer::shard_alignment(cfg.training.optim)).count);
  p.optimizer = AdamWOptimizer::bytes(largest_shard, cfg.training.optim);
  p.samples = samples;
  // The frozen Linears' format as the model resolves it (a folder saved in 4-bit form is 4-bit).
  p.weight_scratch = weight_scratch_bytes(mcfg, resolve_weight_quant(mcfg, mo.quant, cfg.full_finetuning), device);
  if (device == Device::CUDA) {
    p.gemm_workspace = kCudaScratchBytes;
    p.kernel_scratch = cuda_kernel_scratch_bytes(mcfg, mo.max_tokens, P, cfg.full_finetuning);
    p.comm_scratch = world_size > 1 ? kNcclScratchBytes : 0;
    p.comm_buffers = world_size > 1 ? kNcclBuffersBytes : 0;
    p.loss_scratch = cuda::CeScratch(mo.max_tokens, mcfg.hidden_size, mcfg.vocab_size, DType::BF16).total;
    p.context = kCudaContextBytes;
  }
  for (const auto& e : std::filesystem::directory_iterator(cfg.model))
    if (e.path().extension() == ".safetensors" && e.is_regular_file()) p.mapped_weights += e.file_size();
  p.checkpoint_staging = size_t(P) * 12;  // parameters and both moments, F32, gathered on rank 0
  p.checkpointing_auto = cfg.training.gradient_checkpointing_auto;
  p.recomputed_layers = R;
  p.num_layers = mcfg.num_hidden_layers;
  p.full_finetuning = cfg.full_finetuning;
  p.available = available;
  return p;
}

// R for the config: its own setting, or with "auto" the fewest layers whose plan fits (each layer's saved
// activations are the same size, so the plans shrink as R grows). On the GPU "auto" keeps 1/32 of the memory free
// for what the plan cannot count: the allocator's rounding and the error of the CUDA context's estimate. samples:
// samples_bytes(), read from the prompts here when not given (and only when "auto" plans).
int layers_to_recompute(const TrainConfig& cfg, const Qwen2Config& mcfg, Device device, size_t available,
                        int world_size, std::optional<size_t> samples = std::nullopt) {
  const int L = mcfg.num_hidden_layers;
  if (!cfg.training.gradient_checkpointing_auto) return cfg.training.gradient_checkpointing ? L : 0;
  if (available == 0) return 0;
  const size_t reserve = device == Device::CUDA ? available / 32 : 0;
  const size_t budget = available > reserve ? available - reserve : 1;
  if (!samples) samples = samples_bytes(cfg, mcfg, device);
  for (int R = 0; R < L; ++R)
    if (plan_recomputing(cfg, mcfg, device, budget, R, world_size, *samples).fits()) return R;
  return L;
}

}  // namespace

ModelOptions model_options(const TrainConfig& cfg, Device device, size_t available, int world_size) {
  const Qwen2Config mcfg = Qwen2Config::load(cfg.model);
  return options_recomputing(cfg, layers_to_recompute(cfg, mcfg, device, available, world_size));
}

size_t plannable_memory(const Ops& ops) {
  const size_t free = ops.memory_available();
  return free == 0 || ops.device() == Device::CPU ? free : free + kCudaContextBytes;
}

TrainingPlan plan_training(const TrainConfig& cfg, Device device, size_t available_override, int world_size) {
  size_t available = available_override;
  if (available == 0 && (device == Device::CPU || cuda_available()))
    available = plannable_memory(*(device == Device::CPU ? make_cpu_ops() : make_cuda_ops()));
  const Qwen2Config mcfg = Qwen2Config::load(cfg.model);
  const size_t samples = samples_bytes(cfg, mcfg, device);  // the prompts read and encoded once
  const int R = layers_to_recompute(cfg, mcfg, device, available, world_size, samples);
  return plan_recomputing(cfg, mcfg, device, available, R, world_size, samples);
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
  const bool cpu = device == Device::CPU;
  std::string out = std::string("memory plan on ") + (cpu ? "cpu" : "cuda");
  if (world_size > 1) out += ", per rank of " + std::to_string(world_size) + " (AdamW moments sharded: ZeRO-1)";
  out += " (GiB = 2^30 bytes):\n";
  auto line = [&out](const char* what, size_t bytes, const char* note = "") {
    char buf[160];
    std::snprintf(buf, sizeof buf, "  %-34s %10.3f GiB%s\n", what, double(bytes) / double(1ull << 30), note);
    out += buf;
  };
  auto cuda_line = [&](const char* what, size_t bytes, const char* note = "") {
    if (!cpu && bytes) line(what, bytes, note);
  };
  line("frozen weights", model.weights);
  const std::string trained =
      std::string(full_finetuning ? "all weights" : "LoRA params") + " + grads" + (cpu ? "" : " + bf16 copy");
  line(trained.c_str(), model.lora);
  line("AdamW moments", optimizer);
  line("residual streams (L + 1)", model.state.residuals);
  line("saved layer activations", model.state.saved);
  line("backward scratch", model.state.scratch);
  cuda_line("  of which the CE logits chunk", loss_scratch, "  (lm_head_ce, lent)");
  line("batch", model.activations - model.state.residuals - model.state.saved - model.state.scratch);
  if (weight_scratch) line("4-bit dequantization scratch", weight_scratch);
  cuda_line("cuBLASLt workspace", gemm_workspace);
  cuda_line("kernel scratch", kernel_scratch, "  (attention bwd, reductions)");
  cuda_line("NCCL scratch", comm_scratch);
  cuda_line("NCCL buffers", comm_buffers, "  (estimate: kNcclBuffersBytes)");
  if (samples) line("generation_prompts' generator", samples, "  (rank 0, from the first eval)");
  cuda_line("CUDA context", context, "  (estimate: kCudaContextBytes)");
  line(cpu ? "total on the cpu" : "total on the gpu", total());
  if (model.host_weights)
    line("embedding, host-mapped", model.host_weights,
         cpu ? "  (host: frozen, untied)" : "  (host, pinned: the gpu reads T rows a step)");
  line("mapped weight files", mapped_weights, "  (host, while loading)");
  line("checkpoint staging", checkpoint_staging, "  (host, while saving: 12 B/param)");
  line("host peak", host_total());
  char avail[160];
  std::snprintf(avail, sizeof avail, "  %-34s %10.3f GiB\n", cpu ? "available (host)" : "available (gpu)",
                double(available) / double(1ull << 30));
  if (available) out += avail;
  out += "  gradient checkpointing  " + checkpointing() + "\n";
  std::string advice = std::string("DOES NOT FIT: lower micro_batch_tokens / batch size") +
                       (recomputed_layers < num_layers ? ", or turn on gradient_checkpointing" : "");
  if (full_finetuning) advice += " (full fine-tuning keeps 18 bytes per weight on the GPU: or train LoRA)";
  out += "  " +
         (available == 0 ? std::string("fits: unknown (pass --device-memory GIB)")
          : fits()       ? "fits"
                         : advice) +
         "\n";
  return out;
}

}  // namespace qsft
