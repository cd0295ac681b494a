#include "engine/model/run_state.h"

#include <algorithm>

namespace qsft {

static void carve_layer_acts(Arena& a, LayerActs& x, const Qwen2Config& c, const LoraConfig& lora, int64_t T, DType w) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  const int64_t n = c.num_attention_heads, nkv = c.num_key_value_heads;
  x.xn1 = a.take(w, {T, H});
  x.rstd1 = a.take(DType::F32, {T});
  x.qkv = a.take(w, {T, (n + 2 * nkv) * D});
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

// The scratch the forward uses too (run_state.h): d_qkv (packed q, k, v copies for an attention hook) and
// Qwen3's normalized q, k (qkn) with their statistics; in the backward, the attention phase's.
static void carve_attention_scratch(Arena& a, BackwardScratch& g, const Qwen2Config& c, int64_t T, DType w) {
  const int64_t D = c.head_dim, qo = int64_t(c.num_attention_heads) * D, kvo = int64_t(c.num_key_value_heads) * D;
  g.d_qkv = a.take(w, {T, qo + 2 * kvo});
  if (c.qk_norm()) {
    g.qkn = a.take(w, {T, qo + 2 * kvo});
    g.rstd_q = a.take(DType::F32, {T * c.num_attention_heads});
    g.rstd_k = a.take(DType::F32, {T * c.num_key_value_heads});
  }
}

// The backward scratch (run_state.h): dh, dx, then one region carved once per phase over the same bytes, as large
// as its largest phase. The loss phase: xf (the final norm's output, written after the last layer's forward) and the
// loss's scratch after it.
static void carve_backward_scratch(Arena& a, BackwardScratch& g, Tensor& xf, const Qwen2Config& c,
                                   const LoraConfig& lora, int64_t T, DType w, size_t loss_scratch) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  const int64_t qo = int64_t(c.num_attention_heads) * D;
  g.dh = a.take(w, {T, H});
  g.dx = a.take(w, {T, H});
  const size_t start = a.used();
  const auto& targets = lora.targets;
  if (std::find(targets.begin(), targets.end(), true) != targets.end()) {  // LoRA (none with full fine-tuning)
    g.xd = a.take(w, {T, std::max({H, I, qo})});
    g.du = a.take(w, {T, std::max<int64_t>(lora.largest_group() * lora.r, 1)});
  }
  const size_t phases = a.used();
  g.d_act = a.take(w, {T, I});  // the MLP phase
  size_t end = a.used();
  a.rewind(phases);  // the attention phase
  g.d_attn = a.take(w, {T, qo});
  carve_attention_scratch(a, g, c, T, w);
  end = std::max(end, a.used());
  a.rewind(start);  // the loss phase
  xf = a.take(w, {T, H});
  const size_t taken = a.used() - start;
  g.shared = a.take(DType::U8, {int64_t(std::max(end - start, taken + loss_scratch) - taken)});
}

void RunState::carve(Arena& a, const Qwen2Config& c, const LoraConfig& lora, int64_t T, int recomputed_layers, DType w,
                     bool backward, size_t loss_scratch) {
  const int64_t H = c.hidden_size;
  const size_t start = a.used();
  resid.resize(size_t(c.num_hidden_layers) + 1);
  for (size_t i = 0; i < resid.size(); ++i) resid[i] = backward || i < 2 ? a.take(w, {T, H}) : resid[i - 2];
  rstd_f = a.take(DType::F32, {T});
  loss_sum = a.take(DType::F32, {1});
  correct = a.take(DType::I32, {1});
  bytes.residuals = a.used() - start;
  recomputed = recomputed_layers;
  acts.resize(size_t(c.num_hidden_layers - recomputed + (recomputed > 0)));
  for (LayerActs& x : acts) carve_layer_acts(a, x, c, lora, T, w);
  bytes.saved = a.used() - start - bytes.residuals;
  if (backward) {
    carve_backward_scratch(a, g, xf, c, lora, T, w, loss_scratch);
  } else {
    xf = a.take(w, {T, H});
    carve_attention_scratch(a, g, c, T, w);
  }
  bytes.scratch = a.used() - start - bytes.residuals - bytes.saved;
}

}  // namespace qsft
