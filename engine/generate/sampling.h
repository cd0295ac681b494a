// Choosing the next token from the logits, as transformers' generate() does: its logits processors in its order
// (repetition penalty; then when sampling: temperature, top-k, top-p, min-p), then argmax (greedy) or a draw from
// the softmax of what is left. The draw is u = rng::uniform(stream, step) (kernels/rng.h): a fixed seed gives the
// same tokens whatever the batch, the order of the prompts around it or the backend.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace qsft {

struct SamplingConfig {  // transformers' GenerationConfig defaults
  bool do_sample = false;
  float temperature = 1.0f;
  int64_t top_k = 50;  // 0 = off
  float top_p = 1.0f;  // 1 = off
  float min_p = 0.0f;  // 0 = off
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;
  int64_t max_new_tokens = 256;  // transformers would stop at max_length 20 (prompt included); see docs/generate.md
  std::vector<int32_t> eos_ids;  // stop tokens

  bool is_eos(int32_t id) const;
};

// The defaults above overridden by model_dir/generation_config.json when it exists (do_sample, temperature, top_k,
// top_p, min_p, repetition_penalty, max_new_tokens, eos_token_id as one id or a list); a key of the wrong type is an
// InputError naming the file and the key.
SamplingConfig load_generation_config(const std::string& model_dir);
// Values transformers refuses (temperature <= 0, top_p outside (0, 1], ...): InputError prefixed with `where`.
void check_sampling(const SamplingConfig& c, const std::string& where);

// The next token of one sequence. logits [V] are scratch (the processors change them); history: every token the
// sequence has so far (prompt and generated: the repetition penalty's set). `stream` identifies the sequence's
// random stream (e.g. hash(seed, prompt index)), `step` the draw within it.
int32_t next_token(std::span<float> logits, std::span<const int32_t> history, const SamplingConfig& c, uint64_t stream,
                   uint64_t step);

}  // namespace qsft
