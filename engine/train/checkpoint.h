// Checkpoints: output_dir/checkpoint-<step>/ holds the LoRA weights as a PEFT adapter (so any checkpoint exports
// or loads as is) or, with full fine-tuning, the F32 master weights as a Hugging Face model folder (sharded
// safetensors, config.json, tokenizer files: transformers loads it, and resuming from it is bit-exact), the AdamW
// moments, and trainer_state.json (step, data position, logging window, token count).
// Written into a temporary directory (.tmp-checkpoint-<step>.<pid>) and renamed, the folder flushed before older
// checkpoints are pruned, so a crash or power loss never leaves a half checkpoint nor loses the newest one; the
// last save_total_limit are kept. The random streams are counter-based functions of (seed, step, micro-batch): resuming
// needs no RNG state beyond the seed in the config.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "engine/model/full_params.h"
#include "engine/model/lora.h"

namespace qsft {

struct TrainerState {
  int64_t global_step = 0;  // optimizer steps done
  double log_loss_sum = 0;  // losses of the steps since the last log line
  int64_t log_steps = 0;
  double log_accuracy_sum = 0;  // token accuracies of the micro-batches since the last log line
  int64_t log_micro_batches = 0;
  int64_t num_tokens = 0;              // input tokens seen
  double train_seconds = 0;            // wall time spent training before this checkpoint
  int64_t micro_batches_per_step = 0;  // GA x world size of the run (0: a checkpoint written before it was kept)
};

// What a run trains, and so how a checkpoint holds it: LoRA's adapters or every weight (full fine-tuning).
struct TrainedWeights {
  TrainedWeights(const LoraLayout& l) : lora(&l) {}  // NOLINT: implicit, a LoRA layout is the common case
  TrainedWeights(const FullLayout& f) : full(&f) {}  // NOLINT
  const LoraLayout* lora = nullptr;
  const FullLayout* full = nullptr;
  int64_t num_params() const { return full ? full->num_params() : lora->num_params(); }
};

struct Checkpoint {
  TrainerState state;
  std::vector<float> lora;  // the trained parameters: LoraLayout order (full fine-tuning: FullLayout order)
  std::vector<float> exp_avg, exp_avg_sq;  // adamw_torch's moments
  // adamw_8bit's moments: codes [P] and absmax [ceil(P / 256)] (exp_avg, exp_avg_sq are then empty)
  std::vector<uint8_t> exp_avg_codes, exp_avg_sq_codes;
  std::vector<float> exp_avg_absmax, exp_avg_sq_absmax;
};

// Writes output_dir/checkpoint-<step> atomically and prunes older ones beyond keep (0 = keep all).
void save_checkpoint(const std::filesystem::path& output_dir, const TrainedWeights& weights, const Checkpoint& ck,
                     const std::string& base_model, int64_t keep);
// The step of a checkpoint-<step> directory name, or -1.
int64_t checkpoint_step(const std::filesystem::path& p);
// The newest complete checkpoint directory, if any (temporary directories are not checkpoints). Reads only.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& output_dir);
// Removes the temporary directories of interrupted checkpoint writes; only for the holder of the run's lock (a
// reader such as export must not: they may belong to the run in progress).
void remove_checkpoint_temporaries(const std::filesystem::path& output_dir);
Checkpoint load_checkpoint(const std::filesystem::path& dir, const TrainedWeights& weights);

}  // namespace qsft
