// `qwen-sft export --merge`: the base model with the LoRA update folded in, W' = W + scaling * B A, as a
// Hugging Face model directory that transformers loads: safetensors in bf16 (an fp32 base stays fp32, so that
// exact checks are possible; an fp16 base becomes bf16), config.json, and the tokenizer files. The update is added
// in fp32 and rounded once.
#pragma once
#include <filesystem>
#include <vector>

#include "engine/model/lora.h"

namespace qsft {

// The files of a model folder besides its weights and config.json (tokenizer, chat template, generation config)
// that exist in base_dir, copied into out_dir, each written atomically and flushed.
void copy_tokenizer_files(const std::filesystem::path& base_dir, const std::filesystem::path& out_dir);

// Published as one step (engine/io/model_dir.h): an earlier export at out_dir is replaced, the base model's folder
// or another existing folder is refused.
void export_merged_model(const std::filesystem::path& base_dir, const LoraLayout& layout,
                         const std::vector<float>& lora_params, const std::filesystem::path& out_dir);

}  // namespace qsft
