// A fully fine-tuned model as a Hugging Face model directory that transformers loads: every FullLayout weight under
// its state-dict name (a tied lm_head is not written: transformers re-ties it), sharded safetensors with
// model.safetensors.index.json beyond max_shard_bytes, config.json (its dtype set), and the base model's
// generation_config.json, tokenizer files and chat template.
#pragma once
#include <filesystem>
#include <vector>

#include "engine/model/full_params.h"

namespace qsft {

constexpr size_t kModelShardBytes = size_t(4) << 30;  // as merge_model: shards of at most 4 GiB

// Writes into out_dir (created if needed): weights in `dtype` (BF16, or F32 for a checkpoint's master weights).
void write_full_model(const std::filesystem::path& base_dir, const FullLayout& layout, const std::vector<float>& params,
                      const std::filesystem::path& out_dir, DType dtype, size_t max_shard_bytes = kModelShardBytes);

// `qwen-sft export` of a full fine-tuning run: write_full_model published as one step (engine/io/model_dir.h).
// bf16, or fp32 for an fp32 base (as `export --merge`).
void export_full_model(const std::filesystem::path& base_dir, const FullLayout& layout,
                       const std::vector<float>& params, const std::filesystem::path& out_dir);

}  // namespace qsft
