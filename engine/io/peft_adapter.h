// PEFT LoRA adapters on disk: adapter_config.json + adapter_model.safetensors, with PEFT's key names and fields
// (../shared/HF-SPEC.md), so that PeftModel.from_pretrained and vLLM load what we write, and we load theirs.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "engine/model/lora.h"

namespace qsft {

// r, lora_alpha, lora_dropout, target_modules, use_rslora from DIR/adapter_config.json. Unsupported features
// (DoRA, bias other than "none", modules_to_save, rank/alpha patterns) are InputErrors naming the key.
LoraConfig read_peft_config(const std::filesystem::path& dir);
// DIR/adapter_model.safetensors into LoraLayout order; every A and B must be there with its exact shape and
// finite values (a diverged run's NaN adapter is refused, for export and resume alike).
std::vector<float> read_peft_weights(const std::filesystem::path& dir, const LoraLayout& layout);
// Writes both files (each atomically). base_model is adapter_config's base_model_name_or_path.
void write_peft_adapter(const std::filesystem::path& dir, const LoraLayout& layout, const std::vector<float>& params,
                        const std::string& base_model);

}  // namespace qsft
