// RoPE's inverse frequencies and attention scaling from the model's config, exactly as transformers computes them
// (modeling_rope_utils: default, linear, dynamic, yarn, llama3), in fp32: the table the rope op reads (Ops::rope_fwd,
// RopeFreqs).
#pragma once
#include <cstdint>
#include <vector>

#include "engine/io/model_config.h"

namespace qsft {

struct RopeTable {
  std::vector<float> inv_freq;     // [head_dim / 2]
  float attention_scaling = 1.0f;  // multiplies cos and sin
};

// The table for sequences of up to seq_len tokens (only dynamic scaling depends on it: transformers passes
// max(position_ids) + 1). Unlike transformers, which keeps the longest table seen until a sequence shorter than
// max_position_embeddings resets it, the result depends on seq_len alone.
RopeTable rope_table(const Qwen2Config& cfg, int64_t seq_len);

}  // namespace qsft
