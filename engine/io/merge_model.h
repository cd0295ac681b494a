// `qwen-sft export --merge`: the base model with the LoRA update folded in, W' = W + scaling * B A, as a
// Hugging Face model directory that transformers loads: safetensors in the base checkpoint's dtype (bf16 for
// released Qwen models; an fp32 base stays fp32), config.json, and the tokenizer files.
#pragma once
#include <filesystem>
#include <vector>

#include "engine/model/lora.h"

namespace qsft {

void write_merged_model(const std::filesystem::path& base_dir, const LoraLayout& layout,
                        const std::vector<float>& lora_params, const std::filesystem::path& out_dir);

}  // namespace qsft
