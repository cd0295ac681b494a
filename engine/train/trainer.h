// `qwen-sft train`: the loop. One optimizer step = gradient_accumulation_steps micro-batches whose summed
// cross-entropy is divided by the trained targets of the whole step (so the split does not matter), clipping by
// total norm, AdamW, the schedule; logs, eval, checkpoints. Resumes from output_dir's newest checkpoint, which it
// holds locked for the run (engine/train/run_dir.h). A NaN or infinite loss, gradient norm or weight stops the run
// with an InputError before that state is logged or saved. SIGINT / SIGTERM stop it after the current step with a
// checkpoint (engine/train/stop_signals.h).
#pragma once
#include <memory>

#include "engine/train/train_config.h"

namespace qsft {

struct TrainResult {
  int64_t steps = 0;  // optimizer steps done in all (this run and before a resume)
  int64_t steps_this_run = 0;
  double final_loss = 0;      // mean loss of the last logging window
  double eval_loss = -1;      // last eval (-1: none)
  std::string adapter_dir;    // the final checkpoint
  int stopped_by_signal = 0;  // SIGINT / SIGTERM when a signal stopped the run early (after a checkpoint)
  int rank = 0;               // this process's rank in a data-parallel run (only rank 0 reports)
};

TrainResult train(const TrainConfig& cfg, bool show_progress);

}  // namespace qsft
