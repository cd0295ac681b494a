// Generation with a KV cache. Prompts are taken into free cache slots as they free up (continuous batching): a
// prefill packs the new prompts into one forward (the model's own layers; each layer's attention is the packed
// causal attention_fwd, and its keys/values are copied into the prompts' slots), then decode steps run every
// busy slot one token at a time (the model's layers again, attention = Ops::decode_attention over the cache).
// Logits of the rows that need a token go to the host, where sampling.h chooses it; greedy decoding without a
// repetition penalty takes the argmax on the device instead and copies one id per row.
// A conversation (converse: qwen-sft chat) stays in slot 0 between turns: the next turn runs only the tokens
// after the part of the conversation the slot already holds, as rows of one extend step (decode attention with
// several rows per sequence).
//
// Memory: the cache and the step tensors are carved from one arena, measured first (plan_bytes is what the
// arena allocates); the model itself is planned for max(prefill_tokens, slots) tokens
// (generation_model_options).
#pragma once
#include <functional>
#include <vector>

#include "engine/generate/decode_graphs.h"
#include "engine/generate/kv_cache.h"
#include "engine/generate/sampling.h"
#include "engine/model/qwen2.h"

namespace qsft {

struct GeneratorOptions {
  int64_t slots = 8;            // sequences decoded together (the decode batch)
  int64_t capacity = 2048;      // tokens per sequence, prompt + generated (cache positions)
  int64_t prefill_tokens = 0;   // tokens of one prefill forward; 0 = capacity
  bool decode_graphs = true;    // decode steps as replayed graphs where the backend records them (decode_graphs.h)
  int64_t prefill() const { return prefill_tokens > 0 ? prefill_tokens : capacity; }
};

// The model options generation needs: tokens for the largest forward, one layer's activations (no backward).
ModelOptions generation_model_options(const GeneratorOptions& o);

struct Completion {
  std::vector<int32_t> tokens;  // generated, the stop token included when there was one
  bool stopped = false;         // ended on an eos token (else: max_new_tokens or the slot's capacity)
  int64_t reused = 0;           // prompt positions whose keys/values were already in the cache (converse)
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
  // Uses every slot: a conversation held by converse() is forgotten.
  std::vector<Completion> generate(const std::vector<std::vector<int32_t>>& prompts, const SamplingConfig& c,
                                   const TokenFn& on_token = {});
  // The completion of `conversation` (the whole conversation so far, as the chat template renders it), in slot 0.
  // The longest prefix it shares with the tokens the slot holds from the previous call (that call's conversation
  // and completion, all but the completion's last token: it was never an input) is not recomputed; the rest is.
  // Same tokens as generate({conversation}) up to rounding (the extend step's GEMMs have other shapes).
  Completion converse(const std::vector<int32_t>& conversation, const SamplingConfig& c, const TokenFn& on_token = {});
  void forget() { held_.clear(); }  // the next converse() starts from an empty slot
  int64_t graph_replays() const { return graphs_.replays(); }  // decode steps run as a graph replay

 private:
  struct Sequence {  // a prompt in a cache slot
    size_t prompt;
    int64_t slot;
    std::vector<int32_t> tokens;  // prompt + generated so far
    int64_t cached = 0;           // tokens[0, cached) have their keys/values in the slot
    int64_t generated = 0;
  };
  void carve(Arena& a, DType act);
  // Forwards that bring every sequence's cache up to all its tokens and leave logits_ rows [0, seqs.size()) (of
  // each one's last token): prefill, of sequences with nothing cached (packed causal attention); extend, of the
  // tokens after `cached` (one in a decode step), each a row of decode attention over its slot.
  void prefill(std::vector<Sequence>& seqs);
  void extend(std::vector<Sequence>& seqs);
  void upload(Tensor& dst, const std::vector<int32_t>& host);  // dst's first host.size() values
  void check_fits(const std::vector<int32_t>& prompt, size_t index) const;  // InputError naming prompt index + 1
  // Each sequence's next token from logits_ rows [0, seqs.size()).
  std::vector<int32_t> choose(const std::vector<Sequence>& seqs, const SamplingConfig& c);
  // Chooses each sequence's next token (written to out[prompt], streamed); the finished sequences leave seqs and
  // their slots go to `freed`.
  void advance(std::vector<Sequence>& seqs, const SamplingConfig& c, const TokenFn& on_token,
               std::vector<Completion>& out, std::vector<int64_t>& freed);
  // Token t chosen for s: recorded and streamed; true when the sequence is done.
  bool append(Sequence& s, int32_t t, const SamplingConfig& c, Completion& out, const TokenFn& on_token);

  Ops& ops_;
  Qwen2Model& model_;
  const Qwen2Config& cfg_;
  GeneratorOptions opts_;
  Arena arena_;
  KvCache cache_;
  Tensor rows_, slot_, len_;  // I32 [step rows]: hidden rows to read out; each extend row's cache slot and length
  Tensor hidden_;             // [slots, H] activation dtype: the gathered rows
  Tensor logits_;             // F32 [slots, V]
  Tensor picked_;             // I32 [slots]: greedy choices made on the device
  std::vector<float> host_logits_;
  std::vector<int32_t> held_;  // converse(): the tokens whose keys/values slot 0 holds
  DecodeGraphs graphs_;        // the decode steps with one row per sequence
};

}  // namespace qsft
