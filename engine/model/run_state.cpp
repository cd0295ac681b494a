#include "engine/model/run_state.h"

#include <algorithm>

namespace qsft {

static void carve_layer_acts(Arena& a, LayerActs& x, const Qwen2Config& c, const LoraConfig& lora, int64_t T, DType w) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  const int64_t n = c.num_attention_heads, nkv = c.num_key_value_heads;
  x.xn1 = a.take(w, {T, H});
  x.rstd1 = a.take(DType::F32, {T});
  x.qkv = a.take(w, {T, (n + 2 * nkv) * D});
  if (c.qk_norm()) {
    x.q = a.take(w, {T, n, D});
    x.k = a.take(w, {T, nkv, D});
    x.rstd_q = a.take(DType::F32, {T * n});
    x.rstd_k = a.take(DType::F32, {T * nkv});
  }
  x.attn = a.take(w, {T, n, D});
  x.lse = a.take(DType::F32, {n, T});
  x.h_mid = a.take(w, {T, H});
  x.xn2 = a.take(w, {T, H});
  x.rstd2 = a.take(DType::F32, {T});
  x.gate_up = a.take(w, {T, 2 * I});
  x.act = a.take(w, {T, I});
  for (int g = 0; g < kNumLoraGroups; ++g)
    if (int n = lora.group_size(LoraGroup(g))) x.u[size_t(g)] = a.take(w, {T, n * lora.r});
}

void RunState::carve(Arena& a, const Qwen2Config& c, const LoraConfig& lora, int64_t T, int recomputed_layers,
                     DType w, bool backward) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  const int64_t qo = int64_t(c.num_attention_heads) * D, kvo = int64_t(c.num_key_value_heads) * D;
  resid.resize(size_t(c.num_hidden_layers) + 1);
  for (size_t i = 0; i < resid.size(); ++i) resid[i] = backward || i < 2 ? a.take(w, {T, H}) : resid[i - 2];
  recomputed = recomputed_layers;
  acts.resize(size_t(c.num_hidden_layers - recomputed + (recomputed > 0)));
  for (LayerActs& x : acts) carve_layer_acts(a, x, c, lora, T, w);
  xf = a.take(w, {T, H});
  rstd_f = a.take(DType::F32, {T});
  loss_sum = a.take(DType::F32, {1});
  correct = a.take(DType::I32, {1});
  // Scratch the forward uses too: d_qkv's memory holds packed copies of q, k, v for an attention hook
  // (generation), q_pre/k_pre Qwen3's head norm inputs.
  g.d_qkv = a.take(w, {T, qo + 2 * kvo});
  if (c.qk_norm()) {
    g.q_pre = a.take(w, {T, qo});
    g.k_pre = a.take(w, {T, kvo});
  }
  if (!backward) return;
  g.dh = a.take(w, {T, H});
  g.dx = a.take(w, {T, H});
  g.d_attn = a.take(w, {T, qo});
  if (c.qk_norm()) {
    g.dq = a.take(w, {T, qo});
    g.dk = a.take(w, {T, kvo});
    g.dk_pre = a.take(w, {T, kvo});
  }
  g.d_gate_up = a.take(w, {T, 2 * I});
  g.d_act = a.take(w, {T, I});
  const auto& targets = lora.targets;
  if (std::find(targets.begin(), targets.end(), true) == targets.end()) return;  // full fine-tuning: no LoRA branch
  g.du = a.take(w, {T, std::max<int64_t>(lora.largest_group() * lora.r, 1)});
  g.xd = a.take(w, {T, std::max({H, I, qo})});
}

}  // namespace qsft
