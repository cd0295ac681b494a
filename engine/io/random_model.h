// Random Qwen2 models for demos, tests and benchmarks: `qwen-sft init-model --preset NAME --out DIR`.
// Initialised as transformers does (Linear and Embedding ~ N(0, 0.02), biases 0, RMSNorm weights 1), from our
// counter-based generator, so the same (preset, seed) always writes the same bytes.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "engine/base/tensor.h"
#include "engine/io/model_config.h"

namespace qsft {

struct ModelPreset {
  std::string name;
  Qwen2Config config;  // vocab_size 0 = from the tokenizer written alongside (padded to a multiple of 64)
  DType dtype;         // of the weights on disk
};

const std::vector<ModelPreset>& model_presets();
const ModelPreset& find_preset(const std::string& name);  // InputError listing the presets

// DIR/config.json + DIR/model.safetensors (sharded above 2 GiB as transformers would).
void write_random_model(const std::filesystem::path& dir, const Qwen2Config& cfg, DType dtype, uint64_t seed);

}  // namespace qsft
