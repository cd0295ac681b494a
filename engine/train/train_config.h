// cfg.json for `qwen-sft train`: names and defaults as in TRL's SFTConfig / transformers' TrainingArguments, so a
// recipe ports by copying values. Documented key by key in docs/config.md.
//   {"model": DIR, "data": {...}, "lora": {...}, "finetuning_type", "training": {...},
//    "eval_steps", "save_steps", "save_total_limit", "logging_steps", "output_dir", "device"}
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/data_config.h"
#include "engine/model/lora.h"
#include "engine/train/adamw.h"

namespace qsft {

struct TrainingOptions {
  double num_train_epochs = 3;
  int64_t max_steps = -1;               // > 0 overrides num_train_epochs
  int per_device_train_batch_size = 8;  // packed bins of max_length tokens per micro-batch
  int64_t micro_batch_tokens = 0;       // > 0: micro-batches by token budget instead
  int gradient_accumulation_steps = 1;
  double learning_rate = 2e-5;  // TRL's SFTConfig default
  std::string lr_scheduler_type = "linear";
  double warmup_ratio = 0;  // transformers v4's key: warmup = ceil(ratio * total steps)
  double warmup_steps = 0;  // transformers v5: >= 1 a count (truncated), < 1 a ratio; wins when > 0
  AdamWSettings adamw;        // weight_decay, adam_beta1, adam_beta2, adam_epsilon (lr set per step)
  double max_grad_norm = 1.0;
  double neftune_noise_alpha = 0;
  bool gradient_checkpointing = false;
  uint64_t seed = 42;
};

struct TrainConfig {
  std::filesystem::path config_path;
  std::string model;  // model directory, absolute
  DataConfig data;
  LoraConfig lora;
  // Full fine-tuning (every weight trained) as TRL does it without a peft_config: no "lora" section, or
  // "finetuning_type": "full". "finetuning_type": "lora" without a section trains LoRA with PEFT's defaults.
  bool full_finetuning = false;
  TrainingOptions training;
  int64_t eval_steps = 0;  // 0: evaluate at the end only
  int64_t save_steps = 500;
  int64_t save_total_limit = 0;  // 0: keep every checkpoint
  int64_t logging_steps = 10;
  std::string output_dir;       // absolute
  std::string device = "auto";  // auto | cpu | cuda
  std::string resolved_json;    // the whole config after overrides (written to output_dir/config.json)
};

// Reads and validates cfg.json with `--set a.b=value` overrides applied. Unknown keys: InputError naming the file,
// the key and the nearest valid key. Relative paths resolve against the config file's folder.
TrainConfig load_train_config(const std::filesystem::path& path, const std::vector<std::string>& overrides);
// Parses config text (as load_train_config does after reading the file); `path` names it and anchors paths.
TrainConfig parse_train_config(const std::string& json_text, const std::filesystem::path& path);

// The data options as a run uses them: data.cache_dir, or <output_dir>/cache when unset (train and data share it).
DataConfig run_data_config(const TrainConfig& c);

// The dotted keys whose values differ between two resolved configs, leaving out the keys a resumed run may change
// (how long it trains, how often it evaluates, saves and logs, the device). Empty: the same run.
std::vector<std::string> resume_incompatible_keys(const std::string& before_json, const std::string& now_json);

}  // namespace qsft
