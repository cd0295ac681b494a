// Where every tensor of the model lives: the frozen weights, the LoRA buffers and the activations, each carved
// from its own arena. The same carve functions run once to measure (an arena with no memory) and once for real.
#include <algorithm>

#include "engine/model/qwen2.h"

namespace qsft {

void Qwen2Model::carve_weights(Arena& a) {
  const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size, D = cfg_.head_dim, V = cfg_.vocab_size;
  const int64_t qo = int64_t(cfg_.num_attention_heads) * D, kvo = int64_t(cfg_.num_key_value_heads) * D;
  const DType w = act_dtype_;
  embed_ = a.take(w, {V, H});
  final_norm_ = a.take(w, {H});
  lm_head_ = cfg_.tie_word_embeddings ? embed_ : a.take(w, {V, H});
  layers_.resize(size_t(cfg_.num_hidden_layers));
  for (LayerWeights& L : layers_) {
    L.in_norm = a.take(w, {H});
    L.post_norm = a.take(w, {H});
    L.q_w = a.take(w, {qo, H});
    L.k_w = a.take(w, {kvo, H});
    L.v_w = a.take(w, {kvo, H});
    L.q_b = a.take(w, {qo});
    L.k_b = a.take(w, {kvo});
    L.v_b = a.take(w, {kvo});
    L.o_w = a.take(w, {H, qo});
    L.gate_up_w = a.take(w, {2 * I, H});
    L.down_w = a.take(w, {H, I});
  }
}

void Qwen2Model::carve_lora(Arena& a) {
  const int64_t P = layout_.num_params();
  lora_params_ = a.take(DType::F32, {P});
  lora_grads_ = a.take(DType::F32, {P});
}

static void carve_layer_acts(Arena& a, LayerActs& x, const Qwen2Config& c, const LoraLayout& lora, int64_t T,
                             DType w) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  const int64_t n = c.num_attention_heads, nkv = c.num_key_value_heads;
  x.xn1 = a.take(w, {T, H});
  x.rstd1 = a.take(DType::F32, {T});
  x.q = a.take(w, {T, n, D});
  x.k = a.take(w, {T, nkv, D});
  x.v = a.take(w, {T, nkv, D});
  x.attn = a.take(w, {T, n, D});
  x.lse = a.take(DType::F32, {n, T});
  x.h_mid = a.take(w, {T, H});
  x.xn2 = a.take(w, {T, H});
  x.rstd2 = a.take(DType::F32, {T});
  x.gate_up = a.take(w, {T, 2 * I});
  x.act = a.take(w, {T, I});
  for (int t = 0; t < kNumLoraTargets; ++t)
    if (lora.config().adapts(LoraTarget(t))) x.u[size_t(t)] = a.take(w, {T, lora.config().r});
}

void Qwen2Model::carve_activations(Arena& a) {
  const int64_t T = opts_.max_tokens, H = cfg_.hidden_size, I = cfg_.intermediate_size, D = cfg_.head_dim;
  const int64_t qo = int64_t(cfg_.num_attention_heads) * D, kvo = int64_t(cfg_.num_key_value_heads) * D;
  const DType w = act_dtype_;
  resid_.resize(size_t(cfg_.num_hidden_layers) + 1);
  for (Tensor& r : resid_) r = a.take(w, {T, H});
  acts_.resize(opts_.recompute ? 1 : size_t(cfg_.num_hidden_layers));
  for (LayerActs& x : acts_) carve_layer_acts(a, x, cfg_, layout_, T, w);
  xf_ = a.take(w, {T, H});
  rstd_f_ = a.take(DType::F32, {T});
  ids_ = a.take(DType::I32, {T});
  targets_ = a.take(DType::I32, {T});
  positions_ = a.take(DType::I32, {T});
  cu_seqlens_ = a.take(DType::I32, {T + 1});
  loss_sum_ = a.take(DType::F32, {1});
  correct_ = a.take(DType::I32, {1});
  dh_ = a.take(w, {T, H});
  dx_ = a.take(w, {T, H});
  d_attn_ = a.take(w, {T, qo});
  dq_ = a.take(w, {T, qo});
  dk_ = a.take(w, {T, kvo});
  dv_ = a.take(w, {T, kvo});
  d_gate_up_ = a.take(w, {T, 2 * I});
  d_act_ = a.take(w, {T, I});
  du_ = a.take(w, {T, std::max<int64_t>(layout_.config().r, 1)});
  xd_ = a.take(w, {T, std::max({H, I, qo})});
}

}  // namespace qsft
