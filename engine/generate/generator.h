// Generation with a KV cache. Prompts are taken into free cache slots as they free up (continuous batching): a
// prefill packs the new prompts into one forward (the model's own layers; each layer's attention is the packed
// causal attention_fwd, and its keys/values are copied into the prompts' slots), then decode steps run every
// busy slot one token at a time (the model's layers again, attention = Ops::decode_attention over the cache).
// Logits of the rows that need a token go to the host, where sampling.h chooses it.
//
// Memory: the cache and the step tensors are carved from one arena, measured first (plan_bytes is what the
// arena allocates); the model itself is planned for max(prefill_tokens, slots) tokens
// (generation_model_options).
#pragma once
#include <functional>
#include <vector>

#include "engine/generate/kv_cache.h"
#include "engine/generate/sampling.h"
#include "engine/model/qwen2.h"

namespace qsft {

struct GeneratorOptions {
  int64_t slots = 8;            // sequences decoded together (the decode batch)
  int64_t capacity = 2048;      // tokens per sequence, prompt + generated (cache positions)
  int64_t prefill_tokens = 0;   // tokens of one prefill forward; 0 = capacity
  int64_t prefill() const { return prefill_tokens > 0 ? prefill_tokens : capacity; }
};

// The model options generation needs: tokens for the largest forward, one layer's activations (no backward).
ModelOptions generation_model_options(const GeneratorOptions& o);

struct Completion {
  std::vector<int32_t> tokens;  // generated, the stop token included when there was one
  bool stopped = false;         // ended on an eos token (else: max_new_tokens or the slot's capacity)
};

class Generator {
 public:
  // The model must have been built with generation_model_options(o) (or more tokens).
  Generator(Ops& ops, Qwen2Model& model, const GeneratorOptions& o);
  static size_t plan_bytes(const Qwen2Config& cfg, const GeneratorOptions& o, DType act);
  size_t bytes() const { return arena_.capacity(); }  // the cache and step tensors, as allocated

  // on_token(i, token): prompt i's next token, as soon as it is chosen (streaming).
  using TokenFn = std::function<void(size_t prompt, int32_t token)>;
  // Every prompt's completion. A prompt that is empty or does not fit (>= capacity or > prefill tokens) is an
  // InputError naming its index.
  std::vector<Completion> generate(const std::vector<std::vector<int32_t>>& prompts, const SamplingConfig& c,
                                   const TokenFn& on_token = {});

 private:
  struct Sequence {  // a prompt in a cache slot
    size_t prompt;
    int64_t slot;
    std::vector<int32_t> tokens;  // prompt + generated so far
    int64_t generated = 0;
  };
  void carve(Arena& a, DType act);
  // Forwards: the new sequences' prompts; one token for each of `seqs`. Each leaves logits_ rows [0, seqs.size()).
  void prefill(const std::vector<Sequence>& seqs);
  void decode(const std::vector<Sequence>& seqs);
  void upload(Tensor& dst, const std::vector<int32_t>& host);  // dst's first host.size() values
  // Token t chosen for s: recorded and streamed; true when the sequence is done.
  bool append(Sequence& s, int32_t t, const SamplingConfig& c, Completion& out, const TokenFn& on_token);

  Ops& ops_;
  Qwen2Model& model_;
  const Qwen2Config& cfg_;
  GeneratorOptions opts_;
  Arena arena_;
  KvCache cache_;
  Tensor rows_, slot_, len_;  // I32 [slots]: hidden rows to read out; each decode row's cache slot and length
  Tensor hidden_;             // [slots, H] activation dtype: the gathered rows
  Tensor logits_;             // F32 [slots, V]
  Tensor lse_;                // F32 [n * prefill tokens]: the prefill attention's statistics (unused after)
  std::vector<float> host_logits_;
};

}  // namespace qsft
