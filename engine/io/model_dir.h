// Publishing a model folder (`qwen-sft export --merge`, and a full fine-tuning run's export) as one step: the files
// are written into a temporary sibling of out_dir, each file and the folder flushed, then renamed to out_dir, so a
// crash leaves either the previous folder or the new one, never a half-written model.
#pragma once
#include <filesystem>
#include <functional>

namespace qsft {

// Calls write(tmp) and renames tmp to out_dir. An earlier export at out_dir (a folder of model files only: config,
// safetensors, tokenizer files) is replaced; the base model's own folder, a training run's folder or any other
// existing path is an InputError naming it, and nothing is written.
void publish_model_dir(const std::filesystem::path& base_dir, const std::filesystem::path& out_dir,
                       const std::function<void(const std::filesystem::path& tmp)>& write);

}  // namespace qsft
