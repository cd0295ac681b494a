// The Qwen2 decoder (transformers' Qwen2ForCausalLM) with LoRA, forward and backward, written once over Ops.
//   h = embed[ids]                                   (+ NEFTune noise when training with it)
//   per layer: h += o_proj(attn(rope(qkv(rmsnorm1(h)))));  h += down(silu(gate(x)) * up(x)), x = rmsnorm2(h)
//   logits = rmsnorm_final(h) @ lm_head^T             (lm_head = embed when tied; never materialised in training)
// Frozen weights live in one arena, activations in another, both sized before step one from max_tokens.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/packed_batch.h"
#include "engine/arena.h"
#include "engine/io/model_config.h"
#include "engine/model/lora.h"
#include "engine/model/lora_linear.h"
#include "engine/ops.h"

namespace qsft {

struct ModelOptions {
  int64_t max_tokens = 4096;  // tokens of the largest micro-batch
  bool recompute = false;     // activation checkpointing: keep layer inputs only, redo the layer in backward
  float neftune_alpha = 0.0f;  // NEFTune noise on the embeddings while training (0 = off)
  bool neftune_padded_rows = false;  // NEFTune's L: false = the packed row (all T tokens), true = the longest
                                     // sequence (the row length of the padded batch transformers would build)
};

struct LayerWeights {
  Tensor in_norm, post_norm;  // [H]
  Tensor q_w, k_w, v_w;       // [n*D, H], [nkv*D, H], [nkv*D, H]
  Tensor q_b, k_b, v_b;       // [n*D], [nkv*D], [nkv*D]
  Tensor o_w;                 // [H, n*D]
  Tensor gate_up_w;           // [2I, H]: gate_proj rows then up_proj rows (fused at load)
  Tensor down_w;              // [H, I]
};

// What the backward of one layer needs from its forward.
struct LayerActs {
  Tensor xn1, rstd1;            // rmsnorm1 output [T, H], [T]
  Tensor q, k, v;               // after RoPE [T, n, D], [T, nkv, D] x2
  Tensor attn, lse;             // [T, n, D], [n, T]
  Tensor h_mid;                 // residual after attention [T, H]
  Tensor xn2, rstd2;            // rmsnorm2 output [T, H], [T]
  Tensor gate_up, act;          // [T, 2I], [T, I]
  std::array<Tensor, kNumLoraTargets> u;  // LoRA x A^T per adapted module [T, r]
};

// Device bytes the model's arenas take (what `qwen-sft plan` reports; equal to what the arenas allocate).
struct ModelMemory {
  size_t weights = 0;      // frozen weights
  size_t lora = 0;         // LoRA parameters and gradients (F32)
  size_t activations = 0;  // saved activations, backward scratch, the batch
};

struct LossStats {
  double loss_sum = 0;   // summed cross-entropy over trained targets
  int64_t correct = 0;   // argmax == target among them
  int64_t targets = 0;   // how many trained targets
};

class Qwen2Model {
 public:
  Qwen2Model(Ops& ops, const Qwen2Config& cfg, const LoraConfig& lora, const ModelOptions& opts);
  // The arenas' sizes for a backend on `device`, computed by the same carving, without allocating anything.
  static ModelMemory plan_memory(const Qwen2Config& cfg, const LoraConfig& lora, const ModelOptions& opts,
                                 Device device);

  // Frozen weights from a Hugging Face model directory (one or sharded safetensors), checked name by name.
  void load_weights(const std::string& model_dir);
  // LoRA parameters from / to the host, in LoraLayout order.
  void set_lora_params(const std::vector<float>& host);
  std::vector<float> lora_params() const;
  std::vector<float> lora_grads() const;

  // One micro-batch: forward, loss, backward. LoRA gradients accumulate (+=); the loss gradient is scaled by
  // grad_scale (1 / trained targets of the whole optimizer step). seed drives LoRA dropout and NEFTune.
  LossStats forward_backward(const PackedBatch& b, float grad_scale, uint64_t seed);
  LossStats forward_loss(const PackedBatch& b);   // eval: no dropout, no noise, no backward
  std::vector<float> logits(const PackedBatch& b);  // [T, V] on the host (tests; allocates)
  void zero_grads();

  const Qwen2Config& config() const { return cfg_; }
  const LoraLayout& lora_layout() const { return layout_; }
  Tensor& lora_param_tensor() { return lora_params_; }  // F32 [P] on the device
  Tensor& lora_grad_tensor() { return lora_grads_; }
  ModelMemory allocated() const {
    return {weights_arena_.capacity(), lora_arena_.capacity(), acts_arena_.capacity()};
  }

 private:
  Qwen2Model(Ops* ops, Device device, const Qwen2Config& cfg, const LoraConfig& lora, const ModelOptions& opts);
  void carve_weights(Arena& a);
  void carve_lora(Arena& a);
  void carve_activations(Arena& a);
  void upload_batch(const PackedBatch& b);
  LoraBranch branch(int layer, LoraTarget t, uint64_t seed, bool train) const;
  // h_out = layer(h_in); saves into acts. T tokens.
  void layer_forward(int l, const Tensor& h_in, Tensor& h_out, LayerActs& a, uint64_t seed, bool train);
  // dh: gradient w.r.t. the layer output on entry, w.r.t. its input on exit.
  void layer_backward(int l, const Tensor& h_in, LayerActs& a, Tensor& dh, uint64_t seed);
  // embedding + all layers + final norm into xf_; returns nothing, fills resid_ and acts.
  void forward_to_hidden(const PackedBatch& b, uint64_t seed, bool train);
  LayerActs& acts_for(int l) { return opts_.recompute ? acts_[0] : acts_[size_t(l)]; }

  Ops* ops_;  // null when only planning memory
  Qwen2Config cfg_;
  LoraLayout layout_;
  ModelOptions opts_;
  DType act_dtype_;
  int64_t T_ = 0;  // tokens of the current micro-batch
  SeqLayout seq_;

  Arena weights_arena_, lora_arena_, acts_arena_;
  Tensor embed_, final_norm_, lm_head_;
  std::vector<LayerWeights> layers_;
  Tensor lora_params_, lora_grads_;  // F32 [P]
  ModelMemory memory_;

  // activations (sized for max_tokens; views of the first T rows are used)
  std::vector<Tensor> resid_;    // L + 1 residual streams [T, H]: input of each layer, and the last output
  std::vector<LayerActs> acts_;  // L of them, or 1 when recomputing
  Tensor xf_, rstd_f_;           // final norm output [T, H], [T]
  Tensor ids_, targets_, positions_, cu_seqlens_;  // I32 [T], [T], [T], [T + 1]
  Tensor loss_sum_, correct_;    // F32 [1], I32 [1]
  // backward scratch
  Tensor dh_, dx_, d_attn_, dq_, dk_, dv_, d_gate_up_, d_act_, du_, xd_;
};

}  // namespace qsft
