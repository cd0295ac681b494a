// A Hugging Face Qwen2 or Qwen3 config.json (transformers v4 and v5 spellings) as a plain struct, and back. Qwen3 is
// Qwen2 with RMSNorm over each head's q and k before RoPE (q_norm, k_norm) and no q/k/v bias by default.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace qsft {

// The decoder architectures the engine computes.
enum class ModelArch : uint8_t { qwen2, qwen3 };

// RoPE scaling from config.json's rope_scaling (transformers v4) or rope_parameters (v5), as transformers'
// modeling_rope_utils reads it. Optional fields are kept as given (absent = transformers' default) so that
// to_json writes back what was read.
struct RopeScaling {
  std::string type = "default";                  // default, linear, dynamic, yarn, llama3
  double factor = 1.0;                           // linear, dynamic, yarn, llama3 (required by all four)
  int64_t original_max_position_embeddings = 0;  // yarn, llama3: pretraining length (default max_position_embeddings)
  std::optional<double> attention_factor;      // yarn: multiplies cos/sin; default from factor, mscale, mscale_all_dim
  std::optional<double> beta_fast, beta_slow;  // yarn: ramp bounds in rotations (default 32, 1)
  std::optional<double> mscale, mscale_all_dim;      // yarn: DeepSeek-style attention factor
  std::optional<bool> truncate;                      // yarn: floor/ceil the ramp bounds (default true)
  double low_freq_factor = 0, high_freq_factor = 0;  // llama3 (required)
};

// A folder whose Linear weights were saved by bitsandbytes in 4-bit form (config.json's quantization_config,
// engine/io/bnb_checkpoint.h).
struct SavedQuant4 {
  std::string quant_type;  // "nf4" | "fp4"; "" when the weights are not saved quantized
  bool double_quant = false;
  std::string path;  // config.json, for error messages
};

struct Qwen2Config {
  ModelArch arch = ModelArch::qwen2;
  bool attention_bias = true;  // q/k/v (and o when true on Qwen3) projections have a bias: Qwen2 always q/k/v
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_attention_heads unless config.json says otherwise
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 32768;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;  // transformers' Qwen2Config default
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config.json's eos_token_id: an int or a list; empty when absent
  std::string dtype;                   // "bfloat16", "float32", ... ("dtype" in v5, "torch_dtype" in v4); may be ""
  SavedQuant4 saved_4bit;              // quantization_config of a bitsandbytes 4-bit save (not written by to_json)

  bool qk_norm() const { return arch == ModelArch::qwen3; }                   // q_norm/k_norm [head_dim] before RoPE
  bool o_bias() const { return arch == ModelArch::qwen3 && attention_bias; }  // Qwen3's o_proj follows attention_bias

  // DIR/config.json. Rejects what the engine cannot compute exactly: another architecture, sliding-window
  // attention, RoPE types other than default/linear/dynamic/yarn/llama3, partial rotary
  // factors, attention dropout, an activation other than silu.
  static Qwen2Config load(const std::filesystem::path& model_dir);
  // The same from text; `path` names the file in error messages. Sizes are range-checked (bounds well above any
  // released model), so that every product of them fits in 64 bits.
  static Qwen2Config parse(const std::string& json, const std::string& path);
  // Refuses weights this config does not cover: a tensor model.layers.N.* with N >= num_hidden_layers (a
  // config.json with fewer layers would silently train part of the model). `path` names config.json.
  void check_layers(const std::vector<std::string>& tensor_names, const std::string& path) const;

  // config.json text that transformers v4 and v5 both load (indent 2, sorted keys, trailing newline).
  std::string to_json() const;
};

}  // namespace qsft
