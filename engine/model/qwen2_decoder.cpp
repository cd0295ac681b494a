#include "engine/model/qwen2_decoder.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/rng.h"

namespace qsft {

bool embedding_forced_on_device() {
  const char* v = std::getenv("QSFT_EMBEDDING_ON_DEVICE");
  return v && *v && std::strcmp(v, "0") != 0;
}

LoraBranch Qwen2Decoder::branch(const LoraSlot& s, uint64_t seed, bool train) const {
  const int64_t r = p_.lora.config().r;
  LoraBranch b;
  b.A = p_.params.compute_at(s.a_offset, r, s.in);  // the compute copy: bf16 on the GPU, the F32 params on CPU
  b.B = p_.params.compute_at(s.b_offset, s.out, r);
  b.dA = p_.params.grad_at(s.a_offset, r, s.in);
  b.dB = p_.params.grad_at(s.b_offset, s.out, r);
  b.scaling = p_.lora.config().scaling();
  b.dropout = train ? p_.lora.config().dropout : 0.0f;
  b.seed = rng::hash(seed, uint64_t(s.layer) * kNumLoraTargets + uint64_t(s.target));
  return b;
}

LoraStack Qwen2Decoder::stack(int layer, LoraGroup g, uint64_t seed, bool train, std::initializer_list<Tensor> outs,
                              std::array<Tensor, kMaxLoraGroupSize>& member_outs) const {
  LoraStack s;
  const LoraStackSlot* st = p_.lora.find(layer, g);
  if (!st) return s;  // none of the group adapted: n = 0
  s.n = st->n;
  for (int j = 0; j < s.n; ++j) {
    const LoraSlot& slot = p_.lora.slots()[size_t(st->first + j)];
    s.m[size_t(j)] = branch(slot, seed, train);
    member_outs[size_t(j)] = outs.begin()[lora_group_index(slot.target)];
  }
  const int64_t rows = s.n * p_.lora.config().r;
  s.A = p_.params.compute_at(st->a_offset, rows, st->in);
  s.dA = p_.params.grad_at(st->a_offset, rows, st->in);
  return s;
}

void Qwen2Decoder::lora_bwd(int l, LoraGroup g, uint64_t seed, const Tensor& x, std::initializer_list<Tensor> dy,
                            Tensor& dx, LayerActs& a, bool accumulate_dx) {
  std::array<Tensor, kMaxLoraGroupSize> dys;
  const LoraStack s = stack(l, g, seed, true, dy, dys);
  if (!s.n) return;
  const int64_t T = x.dim(0);
  Tensor du = p_.state.g.du.rows(0, T);
  lora_stack_backward(ops_, s, x, a.u[size_t(g)].rows(0, T), dys.data(), dx, du, p_.state.g.xd, accumulate_dx);
}

// The LoRA products before the base GEMM (written; the GEMM adds onto them) unless QSFT_LORA_FIRST=0 (after it,
// read and written again: the order before, to compare on the GPU). Read at every call, so tests can switch it.
static bool lora_first() {
  const char* v = std::getenv("QSFT_LORA_FIRST");
  return !(v && std::strcmp(v, "0") == 0);
}

void Qwen2Decoder::linear_lora_fwd(int l, LoraGroup g, uint64_t seed, bool train, const Tensor& x,
                                   const LinearWeight& W, Tensor& y, std::initializer_list<Tensor> outs, LayerActs& a,
                                   const Tensor* residual) {
  std::array<Tensor, kMaxLoraGroupSize> ys;
  const LoraStack s = stack(l, g, seed, train, outs, ys);
  if (!s.n) return ops_.linear(x, W, y, residual);
  const Tensor u = a.u[size_t(g)].rows(0, x.dim(0));
  if (!residual && s.n == int(outs.size()) && lora_first()) {            // every column of y is a member's: LoRA first
    lora_stack_forward(ops_, s, x, u, ys.data(), p_.state.g.xd, false);  // y_j = s u_j B_j^T
    ops_.linear(x, W, y, &y);                                            // y = x W^T + b + y
    return;
  }
  ops_.linear(x, W, y, residual);
  lora_stack_forward(ops_, s, x, u, ys.data(), p_.state.g.xd);
}

void Qwen2Decoder::dgrad_lora_bwd(int l, LoraGroup g, uint64_t seed, const Tensor& x, const Tensor& dy,
                                  const LinearWeight& W, std::initializer_list<Tensor> dys, Tensor& dx, LayerActs& a) {
  const bool first = lora_first() && p_.lora.find(l, g) != nullptr;
  if (first) lora_bwd(l, g, seed, x, dys, dx, a, false);  // dx = LoRA's input gradient
  ops_.linear_dgrad(dy, W, dx, first);                    // dx (+)= dy W
  if (!first) lora_bwd(l, g, seed, x, dys, dx, a);
}

// Qwen3: q = rmsnorm(x.q), k = rmsnorm(x.k) over each head's D values, read from qkv's columns as strided head views
// and written to the same columns of the shared scratch qkn (v stays qkv's); statistics into the scratch rstd_q,
// rstd_k. What the backward needs: attention's inputs (q, k after the norms and RoPE) and the norms' inputs x.
// RMSNorm's backward, with n = x r (r = rstd) and y = n w:
//   dx_k = r (w_k dy_k - n_k / D sum_j dy_j w_j n_j),   dw_k += sum_rows dy_k n_k,
// needs n (or x and r): recovering n from the output as y / w fails where w_k = 0 and, after RoPE, also needs the
// inverse rotation (rounded, so not the forward's values). Normalizing in place would therefore cost a saved copy
// of x per layer; instead qkv keeps x (the norms read it in place, never overwrite it) and the backward recomputes
// the norms and RoPE into qkn (three memory-bound passes over the q, k columns) with the forward's exact values: no
// per-layer q, k, statistics or packed copies.
QkvHeads Qwen2Decoder::head_norms_fwd(int l, const QkvHeads& x) {
  const LayerWeights& W = p_.weights.layers[size_t(l)];
  const BackwardScratch& g = p_.state.g;
  const int64_t T = x.q.dim(0);
  const float eps = float(p_.cfg.rms_norm_eps);
  QkvHeads y = split_qkv(g.qkn.rows(0, T));
  y.v = x.v;
  Tensor rq = g.rstd_q.rows(0, T * x.q.dim(1)), rk = g.rstd_k.rows(0, T * x.k.dim(1));
  ops_.rmsnorm_fwd(x.q, W.q_norm, eps, y.q, rq);
  ops_.rmsnorm_fwd(x.k, W.k_norm, eps, y.k, rk);
  return y;
}

// Qwen3: d.q, d.k (d_qkv's columns: the gradients of the norms' outputs) become those of their inputs x.q, x.k, in
// place, after the norms' weight gradients (which read them) when G is given. The statistics are head_norms_fwd's
// of this layer (recomputed just before).
void Qwen2Decoder::head_norms_bwd(int l, const QkvHeads& x, const QkvHeads& d, const LayerWeights* G) {
  const LayerWeights& W = p_.weights.layers[size_t(l)];
  const BackwardScratch& g = p_.state.g;
  const int64_t T = x.q.dim(0);
  const Tensor rq = g.rstd_q.rows(0, T * x.q.dim(1)), rk = g.rstd_k.rows(0, T * x.k.dim(1));
  if (G) {
    norm_wgrad(d.q, x.q, rq, G->q_norm);
    norm_wgrad(d.k, x.k, rk, G->k_norm);
  }
  Tensor dq = d.q, dk = d.k;
  ops_.rmsnorm_bwd(d.q, x.q, W.q_norm, rq, dq, false);
  ops_.rmsnorm_bwd(d.k, x.k, W.k_norm, rk, dk, false);
}

// dw += d rmsnorm(x)/dw ^T dy: x, dy [T, H] or [T, heads, D] (strided head views: a norm over each head), rstd F32
// [>= rows] (its first rows used).
void Qwen2Decoder::norm_wgrad(const Tensor& dy, const Tensor& x, const Tensor& rstd, const Tensor& dw) {
  const int64_t rows = x.numel() / dw.numel();
  Tensor dw_t = dw;
  ops_.rmsnorm_wgrad(dy, x, rstd.rows(0, rows), dw_t);
}

QkvHeads Qwen2Decoder::split_qkv(const Tensor& qkv) const {
  const int64_t T = qkv.dim(0), n = p_.cfg.num_attention_heads, nkv = p_.cfg.num_key_value_heads;
  const int64_t D = p_.cfg.head_dim;
  return {qkv.cols(0, n * D).view({T, n, D}), qkv.cols(n * D, (n + nkv) * D).view({T, nkv, D}),
          qkv.cols((n + nkv) * D, (n + 2 * nkv) * D).view({T, nkv, D}),
          qkv.cols(0, (n + nkv) * D).view({T, n + nkv, D})};
}

// The attend hook (generation: decode_attention reads packed rows) gets packed q, k, v: strided ones are copied
// into the backward scratch d_qkv, unused at inference, as [T, n, D], [T, nkv, D], [T, nkv, D] one after another.
void Qwen2Decoder::attend_packed(int l, Tensor q, Tensor k, Tensor v, const SeqLayout& seq, Tensor& attn, Tensor& lse) {
  char* next = static_cast<char*>(p_.state.g.d_qkv.data);
  for (Tensor* t : {&q, &k, &v}) {
    Tensor packed(next, t->dtype, {t->dim(0), t->dim(1), t->dim(2)}, t->device);
    next += packed.nbytes();
    if (t->contiguous()) continue;
    ops_.copy(packed, *t);
    *t = packed;
  }
  (*attend_)(l, q, k, v, seq, attn, lse);
}

void Qwen2Decoder::layer_forward(int l, const Tensor& h_in, Tensor& h_out, LayerActs& a, uint64_t seed, bool train) {
  const int64_t T = p_.batch.tokens(), I = p_.cfg.intermediate_size;
  const float eps = float(p_.cfg.rms_norm_eps);
  const RopeFreqs& rope = p_.weights.rope;
  const LayerWeights& W = p_.weights.layers[size_t(l)];
  const SeqLayout& seq = p_.batch.layout();
  // attention block: x = rmsnorm1(h); [q | k | v] = x Wqkv^T + b (one GEMM, + LoRA into each column slice); RoPE;
  // attention over the strided head views; h_mid = h + o_proj(attn)
  Tensor xn1 = a.xn1.rows(0, T), rstd1 = a.rstd1.rows(0, T);
  ops_.rmsnorm_fwd(h_in, W.in_norm, eps, xn1, rstd1);
  Tensor qkv = a.qkv.rows(0, T);
  QkvHeads h = split_qkv(qkv);
  linear_lora_fwd(l, LoraGroup::qkv, seed, train, xn1, W.qkv, qkv, {h.q, h.k, h.v}, a);
  if (p_.cfg.qk_norm()) h = head_norms_fwd(l, h);  // Qwen3: q, k normalized per head into the scratch qkn
  ops_.rope_fwd(h.qk, seq, rope);                    // q's and k's heads are adjacent columns: one call
  Tensor attn = a.attn.rows(0, T), lse = a.lse_rows(T);
  if (attend_) {
    attend_packed(l, h.q, h.k, h.v, seq, attn, lse);
  } else {
    ops_.attention_fwd(h.q, h.k, h.v, seq, attn, lse);
  }
  Tensor h_mid = a.h_mid.rows(0, T);
  linear_lora_fwd(l, LoraGroup::o, seed, train, attn, W.o, h_mid, {h_mid}, a, &h_in);
  // MLP block: x = rmsnorm2(h_mid); [gate | up] = x [Wg; Wu]^T (+ LoRA); h_out = h_mid + down(silu(gate) * up)
  Tensor xn2 = a.xn2.rows(0, T), rstd2 = a.rstd2.rows(0, T);
  ops_.rmsnorm_fwd(h_mid, W.post_norm, eps, xn2, rstd2);
  Tensor gate_up = a.gate_up.rows(0, T), act = a.act.rows(0, T);
  linear_lora_fwd(l, LoraGroup::gate_up, seed, train, xn2, W.gate_up, gate_up,
                  {gate_up.cols(0, I), gate_up.cols(I, 2 * I)}, a);
  ops_.swiglu_fwd(gate_up, act);
  linear_lora_fwd(l, LoraGroup::down, seed, train, act, W.down, h_out, {h_out}, a, &h_mid);
}

void Qwen2Decoder::layer_backward(int l, const Tensor& h_in, LayerActs& a, Tensor& dh, uint64_t seed) {
  const int64_t T = p_.batch.tokens(), I = p_.cfg.intermediate_size;
  const RopeFreqs& rope = p_.weights.rope;
  const LayerWeights& W = p_.weights.layers[size_t(l)];
  const SeqLayout& seq = p_.batch.layout();
  BackwardScratch& g = p_.state.g;
  // MLP block. dh = d h_out, which is also d down_out.
  Tensor act = a.act.rows(0, T), gate_up = a.gate_up.rows(0, T), xn2 = a.xn2.rows(0, T);
  // d gate_up overwrites gate_up (swiglu_bwd may run in place; gate_up is not read after it).
  Tensor d_act = g.d_act.rows(0, T), d_gate_up = gate_up, dx = g.dx.rows(0, T);
  const LayerWeights* G = p_.grads ? &p_.grads->layers[size_t(l)] : nullptr;  // full fine-tuning: weight grads
  dgrad_lora_bwd(l, LoraGroup::down, seed, act, dh, W.down, {dh}, d_act, a);
  if (G) ops_.linear_wgrad(dh, act, G->down);
  ops_.swiglu_bwd(d_act, gate_up, d_gate_up);
  dgrad_lora_bwd(l, LoraGroup::gate_up, seed, xn2, d_gate_up, W.gate_up,
                 {d_gate_up.cols(0, I), d_gate_up.cols(I, 2 * I)}, dx, a);
  if (G) ops_.linear_wgrad(d_gate_up, xn2, G->gate_up);
  if (G) norm_wgrad(dx, a.h_mid.rows(0, T), a.rstd2.rows(0, T), G->post_norm);
  ops_.rmsnorm_bwd(dx, a.h_mid.rows(0, T), W.post_norm, a.rstd2.rows(0, T), dh);  // dh = d h_mid
  // attention block. d o_proj_out = dh.
  Tensor attn = a.attn.rows(0, T), d_attn = g.d_attn.rows(0, T);
  dgrad_lora_bwd(l, LoraGroup::o, seed, attn, dh, W.o, {dh}, d_attn, a);
  if (G) ops_.linear_wgrad(dh, attn, G->o);
  // dq, dk, dv are column slices of one d_qkv [T, (n + 2 nkv) D], so one dgrad GEMM (and one wgrad) takes them.
  Tensor d_qkv = g.d_qkv.rows(0, T);
  const QkvHeads x = split_qkv(a.qkv.rows(0, T)), dh3 = split_qkv(d_qkv);
  QkvHeads h = x;  // attention's q, k, v: qkv's, or on Qwen3 q, k recomputed from qkv's (the norms' inputs)
  if (p_.cfg.qk_norm()) {
    h = head_norms_fwd(l, x);
    ops_.rope_fwd(h.qk, seq, rope);
  }
  Tensor dq = dh3.q, dk = dh3.k, dv = dh3.v, dqk = dh3.qk;
  ops_.attention_bwd(d_attn.view({T, h.q.dim(1), h.q.dim(2)}), h.q, h.k, h.v, attn, a.lse_rows(T), seq, dq, dk, dv);
  ops_.rope_bwd(dqk, seq, rope);  // dq's and dk's heads are adjacent columns: one call
  if (p_.cfg.qk_norm()) head_norms_bwd(l, x, dh3, G);
  Tensor xn1 = a.xn1.rows(0, T);
  dgrad_lora_bwd(l, LoraGroup::qkv, seed, xn1, d_qkv, W.qkv, {dh3.q, dh3.k, dh3.v}, dx, a);
  if (G) ops_.linear_wgrad(d_qkv, xn1, G->qkv);  // q_proj, k_proj, v_proj are consecutive in the flat grads
  if (G) norm_wgrad(dx, h_in, a.rstd1.rows(0, T), G->in_norm);
  ops_.rmsnorm_bwd(dx, h_in, W.in_norm, a.rstd1.rows(0, T), dh);  // dh = d h_in
}

void Qwen2Decoder::forward_to_hidden(uint64_t seed, bool train) {
  const int64_t T = p_.batch.tokens(), L = p_.cfg.num_hidden_layers;
  RunState& st = p_.state;
  ops_.profile_tokens(T);
  Tensor h0 = st.resid[0].rows(0, T);
  ops_.embedding_fwd(p_.batch.ids(), p_.weights.embed, h0);
  if (train && p_.opts.neftune_alpha > 0) {
    // transformers' NEFTune: U(-a/sqrt(L*d), a/sqrt(L*d)) with L the row length of the batch it sees: the packed
    // row (padding-free) or, for a padded batch, its longest sequence.
    const float len = p_.opts.neftune_padded_rows ? float(p_.batch.max_seqlen()) : float(T);
    const float scale = p_.opts.neftune_alpha / std::sqrt(len * float(p_.cfg.hidden_size));
    ops_.neftune_noise(h0, scale, rng::hash(seed, ~0ull));
  }
  for (int64_t l = 0; l < L; ++l) {
    Tensor h_out = st.resid[size_t(l) + 1].rows(0, T);
    layer_forward(int(l), st.resid[size_t(l)].rows(0, T), h_out, st.layer(int(l)), seed, train);
  }
  Tensor xf = st.xf.rows(0, T), rstd_f = st.rstd_f.rows(0, T);
  ops_.rmsnorm_fwd(st.resid[size_t(L)].rows(0, T), p_.weights.final_norm, float(p_.cfg.rms_norm_eps), xf, rstd_f);
}

LossStats Qwen2Decoder::read_loss() {
  float loss = 0;
  int32_t correct = 0;
  ops_.copy_to_host(&loss, p_.state.loss_sum.data, 4);
  ops_.copy_to_host(&correct, p_.state.correct.data, 4);
  return {loss, correct, p_.batch.num_targets()};
}

LossStats Qwen2Decoder::loss_and_backward(float grad_scale, uint64_t seed, const GradsFinalFn* grads_final) {
  auto final_from = [&](int64_t layer) {
    if (grads_final) (*grads_final)(int(layer));
  };
  const int64_t T = p_.batch.tokens(), L = p_.cfg.num_hidden_layers;
  RunState& st = p_.state;
  ops_.zero(st.loss_sum);
  ops_.zero(st.correct);
  Tensor dxf = st.g.dx.rows(0, T), dh = st.g.dh.rows(0, T);
  const Qwen2Weights* G = p_.grads;  // full fine-tuning (tied: G->lm_head is G->embed, both add into it)
  Tensor d_lm_head = G ? G->lm_head : Tensor();
  ops_.lm_head_ce(st.xf.rows(0, T), p_.weights.lm_head, p_.batch.targets(), grad_scale, st.loss_sum, st.correct, &dxf,
                  G ? &d_lm_head : nullptr, &st.g.shared);
  ops_.zero(dh);
  if (G) norm_wgrad(dxf, st.resid[size_t(L)].rows(0, T), st.rstd_f.rows(0, T), G->final_norm);
  ops_.rmsnorm_bwd(dxf, st.resid[size_t(L)].rows(0, T), p_.weights.final_norm, st.rstd_f.rows(0, T), dh);
  final_from(L);
  for (int64_t l = L - 1; l >= 0; --l) {
    const Tensor h_in = st.resid[size_t(l)].rows(0, T);
    if (p_.opts.recomputes(l)) {
      Tensor h_out = st.resid[size_t(l) + 1].rows(0, T);  // recomputed to the same values
      layer_forward(int(l), h_in, h_out, st.layer(int(l)), seed, true);
    }
    layer_backward(int(l), h_in, st.layer(int(l)), dh, seed);
    final_from(l);
  }
  if (G) {  // dh = d h0: the embedding rows of the batch's tokens (NEFTune's noise is additive: no effect)
    Tensor d_embed = G->embed;
    ops_.embedding_bwd(p_.batch.ids(), dh, d_embed);
  }
  final_from(-1);
  return read_loss();
}

LossStats Qwen2Decoder::loss() {
  const int64_t T = p_.batch.tokens();
  RunState& st = p_.state;
  ops_.zero(st.loss_sum);
  ops_.zero(st.correct);
  ops_.lm_head_ce(st.xf.rows(0, T), p_.weights.lm_head, p_.batch.targets(), 0.0f, st.loss_sum, st.correct, nullptr,
                  nullptr, &st.g.shared);
  return read_loss();
}

}  // namespace qsft
