// cfg.json for `qwen-sft train`: names and defaults as in TRL's SFTConfig / transformers' TrainingArguments, so a
// recipe ports by copying values. Documented key by key in docs/config.md.
//   {"model": DIR, "data": {...}, "lora": {...}, "finetuning_type", "training": {...},
//    "eval_steps", "save_steps", "save_total_limit", "logging_steps", "output_dir", "device", "generation_prompts"}
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/data_config.h"
#include "engine/model/lora.h"
#include "engine/model/qwen2_weights.h"
#include "engine/train/adamw.h"
#include "engine/train/lr_schedule.h"

namespace qsft {

struct TrainingOptions {
  double num_train_epochs = 3;
  int64_t max_steps = -1;               // > 0 overrides num_train_epochs
  int per_device_train_batch_size = 8;  // packed bins of max_length tokens per micro-batch
  int64_t micro_batch_tokens = 0;       // > 0: micro-batches by token budget instead
  int gradient_accumulation_steps = 1;
  double learning_rate = 2e-5;  // TRL's SFTConfig default
  std::string lr_scheduler_type = "linear";
  LrSchedulerKwargs lr_scheduler_kwargs;  // transformers' names; which are accepted depends on the type
  double warmup_ratio = 0;  // transformers v4's key: warmup = ceil(ratio * total steps)
  double warmup_steps = 0;  // transformers v5: >= 1 a count (truncated), < 1 a ratio; wins when > 0
  std::string optim = "adamw_torch";  // adamw_torch (= adamw_torch_fused) | adamw_8bit (bitsandbytes' 8-bit state)
  AdamWSettings adamw;                // weight_decay, adam_beta1, adam_beta2, adam_epsilon (lr set per step)
  double max_grad_norm = 1.0;
  double ddp_bucket_cap_mb = 25;  // MiB per gradient bucket reduced during the backward (engine/dist/grad_buckets.h)
  double neftune_noise_alpha = 0;
  bool gradient_checkpointing = false;      // true: every layer is recomputed in the backward
  bool gradient_checkpointing_auto = true;  // "auto" (the default): only the fewest layers that make the plan fit
  bool embedding_on_host = true;  // an untied, frozen embedding in host memory mapped for the GPU (ModelOptions)
  uint64_t seed = 42;
};

// QLoRA's 4-bit base, with transformers' BitsAndBytesConfig names (docs/qlora.md). TRL's default quant type (nf4).
struct QuantOptions {
  bool load_in_4bit = false;
  std::string quant_type = "nf4";  // bnb_4bit_quant_type: nf4 | fp4
  bool double_quant = false;       // bnb_4bit_use_double_quant (TRL: use_bnb_nested_quant)
  std::string compute_dtype;       // bnb_4bit_compute_dtype: "" | bfloat16 | float32 (the backend's dtype is used)
  WeightQuant weights() const {    // what the model carves
    if (!load_in_4bit) return {};
    return {quant_type == "fp4" ? WeightFormat::fp4 : WeightFormat::nf4, double_quant};
  }
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
  QuantOptions quant;
  int64_t eval_steps = 0;  // 0: evaluate at the end only
  int64_t save_steps = 500;
  int64_t save_total_limit = 0;  // 0: keep every checkpoint
  int64_t logging_steps = 10;
  std::string output_dir;       // absolute
  std::string device = "auto";  // auto | cpu | cuda
  std::string generation_prompts;  // prompts (qwen-sft generate's JSONL) answered at each eval; absolute; "" = none
  std::string resolved_json;    // the whole config after overrides (written to output_dir/config.json)
};

// Reads and validates cfg.json with `--set a.b=value` overrides applied. Unknown keys: InputError naming the file,
// the key and the nearest valid key. Relative paths resolve against the config file's folder.
TrainConfig load_train_config(const std::filesystem::path& path, const std::vector<std::string>& overrides);
// Parses config text (as load_train_config does after reading the file); `path` names it and anchors paths.
TrainConfig parse_train_config(const std::string& json_text, const std::filesystem::path& path);

// The run's schedule: its type, rate and kwargs, with transformers' warmup steps for total_steps.
LrSchedule lr_schedule_for(const TrainingOptions& t, int64_t total_steps);

// The data options as a run uses them: data.cache_dir, or <output_dir>/cache when unset (train and data share it).
DataConfig run_data_config(const TrainConfig& c);

// The dotted keys whose values differ between two resolved configs, leaving out the keys a resumed run may change
// (how long it trains, how often it evaluates, saves and logs, the device). Empty: the same run.
std::vector<std::string> resume_incompatible_keys(const std::string& before_json, const std::string& now_json);

}  // namespace qsft
