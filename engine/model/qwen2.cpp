#include "engine/model/qwen2.h"

#include <cmath>

#include "kernels/rng.h"

namespace qsft {

Qwen2Model::Qwen2Model(Ops& ops, const Qwen2Config& cfg, const LoraConfig& lora, const ModelOptions& opts)
    : Qwen2Model(&ops, ops.device(), cfg, lora, opts) {}

Qwen2Model::Qwen2Model(Ops* ops, Device device, const Qwen2Config& cfg, const LoraConfig& lora,
                       const ModelOptions& opts)
    : ops_(ops), cfg_(cfg), layout_(cfg, lora), opts_(opts) {
  // The cpu backend is the fp32 reference; the cuda backend keeps activations and frozen weights in bf16.
  act_dtype_ = device == Device::CPU ? DType::F32 : DType::BF16;
  Arena measure_w, measure_a, measure_l;
  carve_weights(measure_w);
  carve_lora(measure_l);
  carve_activations(measure_a);
  memory_ = {measure_w.used(), measure_l.used(), measure_a.used()};
  if (!ops_) return;  // planning only
  weights_arena_ = Arena(*ops_, memory_.weights);
  carve_weights(weights_arena_);
  lora_arena_ = Arena(*ops_, memory_.lora);
  carve_lora(lora_arena_);
  acts_arena_ = Arena(*ops_, memory_.activations);
  carve_activations(acts_arena_);
}

ModelMemory Qwen2Model::plan_memory(const Qwen2Config& cfg, const LoraConfig& lora, const ModelOptions& opts,
                                    Device device) {
  return Qwen2Model(nullptr, device, cfg, lora, opts).memory_;
}

void Qwen2Model::set_lora_params(const std::vector<float>& host) {
  QSFT_CHECK(int64_t(host.size()) == layout_.num_params(), "LoRA parameter count");
  ops_->copy_to_device(lora_params_.data, host.data(), host.size() * 4);
}

static std::vector<float> to_host(Ops& ops, const Tensor& t) {
  std::vector<float> h(size_t(t.numel()));
  ops.copy_to_host(h.data(), t.data, h.size() * 4);
  return h;
}
std::vector<float> Qwen2Model::lora_params() const { return to_host(*ops_, lora_params_); }
std::vector<float> Qwen2Model::lora_grads() const { return to_host(*ops_, lora_grads_); }
void Qwen2Model::zero_grads() { ops_->zero(lora_grads_); }

LoraBranch Qwen2Model::branch(int layer, LoraTarget t, uint64_t seed, bool train) const {
  const LoraSlot* s = layout_.find(layer, t);
  LoraBranch b;
  if (!s) return b;  // not adapted: A stays empty
  const int64_t r = layout_.config().r;
  float* p = static_cast<float*>(lora_params_.data);
  float* g = static_cast<float*>(lora_grads_.data);
  const Device dev = lora_params_.device;
  b.A = Tensor(p + s->a_offset, DType::F32, {r, s->in}, dev);
  b.B = Tensor(p + s->b_offset, DType::F32, {s->out, r}, dev);
  b.dA = Tensor(g + s->a_offset, DType::F32, {r, s->in}, dev);
  b.dB = Tensor(g + s->b_offset, DType::F32, {s->out, r}, dev);
  b.scaling = layout_.config().scaling();
  b.dropout = train ? layout_.config().dropout : 0.0f;
  b.seed = rng::hash(seed, uint64_t(layer) * kNumLoraTargets + uint64_t(t));
  return b;
}

void Qwen2Model::upload_batch(const PackedBatch& b) {
  T_ = b.num_tokens();
  QSFT_CHECK(T_ > 0 && T_ <= opts_.max_tokens, "micro-batch of " + std::to_string(T_) +
                                                   " tokens exceeds the planned " + std::to_string(opts_.max_tokens));
  for (int32_t id : b.ids)
    if (id < 0 || id >= cfg_.vocab_size)
      throw InputError("token id " + std::to_string(id) + " is outside the model's vocabulary [0, " +
                       std::to_string(cfg_.vocab_size) + ")");
  ops_->copy_to_device(ids_.data, b.ids.data(), size_t(T_) * 4);
  ops_->copy_to_device(targets_.data, b.targets.data(), size_t(T_) * 4);
  ops_->copy_to_device(positions_.data, b.positions.data(), size_t(T_) * 4);
  ops_->copy_to_device(cu_seqlens_.data, b.cu_seqlens.data(), b.cu_seqlens.size() * 4);
  seq_.positions = positions_.rows(0, T_);
  seq_.cu_seqlens = cu_seqlens_.rows(0, int64_t(b.cu_seqlens.size()));
  seq_.num_seqs = b.num_seqs();
  seq_.max_seqlen = b.max_seqlen;
}

void Qwen2Model::layer_forward(int l, const Tensor& h_in, Tensor& h_out, LayerActs& a, uint64_t seed, bool train) {
  const int64_t T = T_, I = cfg_.intermediate_size;
  const float eps = float(cfg_.rms_norm_eps), theta = float(cfg_.rope_theta);
  const LayerWeights& W = layers_[size_t(l)];
  auto lora = [&](LoraTarget t, const Tensor& x, const Mat& y) {
    LoraBranch br = branch(l, t, seed, train);
    if (br.A.empty()) return;
    Tensor u = a.u[size_t(t)].rows(0, T);
    lora_forward(*ops_, br, x, u, y, xd_);
  };
  // attention block: x = rmsnorm1(h); q/k/v = x W^T + b (+ LoRA); RoPE; attention; h_mid = h + o_proj(attn)
  Tensor xn1 = a.xn1.rows(0, T), rstd1 = a.rstd1.rows(0, T);
  ops_->rmsnorm_fwd(h_in, W.in_norm, eps, xn1, rstd1);
  Tensor q = a.q.rows(0, T), k = a.k.rows(0, T), v = a.v.rows(0, T);
  ops_->gemm(Mat::of(xn1), false, Mat::of(W.q_w), true, Mat::of(q), 1.0f, 0.0f, &W.q_b);
  ops_->gemm(Mat::of(xn1), false, Mat::of(W.k_w), true, Mat::of(k), 1.0f, 0.0f, &W.k_b);
  ops_->gemm(Mat::of(xn1), false, Mat::of(W.v_w), true, Mat::of(v), 1.0f, 0.0f, &W.v_b);
  lora(LoraTarget::q, xn1, Mat::of(q));
  lora(LoraTarget::k, xn1, Mat::of(k));
  lora(LoraTarget::v, xn1, Mat::of(v));
  ops_->rope_fwd(q, seq_, theta);
  ops_->rope_fwd(k, seq_, theta);
  Tensor attn = a.attn.rows(0, T);
  Tensor lse(a.lse.data, DType::F32, {a.lse.dim(0), T}, a.lse.device);
  ops_->attention_fwd(q, k, v, seq_, attn, lse);
  Tensor h_mid = a.h_mid.rows(0, T);
  ops_->copy(h_mid, h_in);
  ops_->gemm(Mat::of(attn), false, Mat::of(W.o_w), true, Mat::of(h_mid), 1.0f, 1.0f);  // residual via beta = 1
  lora(LoraTarget::o, attn, Mat::of(h_mid));
  // MLP block: x = rmsnorm2(h_mid); [gate | up] = x [Wg; Wu]^T (+ LoRA); h_out = h_mid + down(silu(gate) * up)
  Tensor xn2 = a.xn2.rows(0, T), rstd2 = a.rstd2.rows(0, T);
  ops_->rmsnorm_fwd(h_mid, W.post_norm, eps, xn2, rstd2);
  Tensor gate_up = a.gate_up.rows(0, T), act = a.act.rows(0, T);
  ops_->gemm(Mat::of(xn2), false, Mat::of(W.gate_up_w), true, Mat::of(gate_up), 1.0f, 0.0f);
  lora(LoraTarget::gate, xn2, Mat::of(gate_up).cols_slice(0, I));
  lora(LoraTarget::up, xn2, Mat::of(gate_up).cols_slice(I, 2 * I));
  ops_->swiglu_fwd(gate_up, act);
  ops_->copy(h_out, h_mid);
  ops_->gemm(Mat::of(act), false, Mat::of(W.down_w), true, Mat::of(h_out), 1.0f, 1.0f);
  lora(LoraTarget::down, act, Mat::of(h_out));
}

void Qwen2Model::layer_backward(int l, const Tensor& h_in, LayerActs& a, Tensor& dh, uint64_t seed) {
  const int64_t T = T_, I = cfg_.intermediate_size;
  const float theta = float(cfg_.rope_theta);
  const LayerWeights& W = layers_[size_t(l)];
  Tensor du = du_.rows(0, T);
  auto lora = [&](LoraTarget t, const Tensor& x, const Mat& dy, Tensor& dx) {
    LoraBranch br = branch(l, t, seed, true);
    if (br.A.empty()) return;
    lora_backward(*ops_, br, x, a.u[size_t(t)].rows(0, T), dy, dx, du, xd_);
  };
  // MLP block. dh = d h_out, which is also d down_out.
  Tensor act = a.act.rows(0, T), gate_up = a.gate_up.rows(0, T), xn2 = a.xn2.rows(0, T);
  Tensor d_act = d_act_.rows(0, T), d_gate_up = d_gate_up_.rows(0, T), dx = dx_.rows(0, T);
  ops_->gemm(Mat::of(dh), false, Mat::of(W.down_w), false, Mat::of(d_act), 1.0f, 0.0f);  // [T, H] @ [H, I]
  lora(LoraTarget::down, act, Mat::of(dh), d_act);
  ops_->swiglu_bwd(d_act, gate_up, d_gate_up);
  ops_->gemm(Mat::of(d_gate_up), false, Mat::of(W.gate_up_w), false, Mat::of(dx), 1.0f, 0.0f);  // @ [2I, H]
  lora(LoraTarget::gate, xn2, Mat::of(d_gate_up).cols_slice(0, I), dx);
  lora(LoraTarget::up, xn2, Mat::of(d_gate_up).cols_slice(I, 2 * I), dx);
  ops_->rmsnorm_bwd(dx, a.h_mid.rows(0, T), W.post_norm, a.rstd2.rows(0, T), dh);  // dh = d h_mid
  // attention block. d o_proj_out = dh.
  Tensor attn = a.attn.rows(0, T), d_attn = d_attn_.rows(0, T);
  ops_->gemm(Mat::of(dh), false, Mat::of(W.o_w), false, Mat::of(d_attn), 1.0f, 0.0f);  // [T, H] @ [H, n*D]
  lora(LoraTarget::o, attn, Mat::of(dh), d_attn);
  Tensor q = a.q.rows(0, T), k = a.k.rows(0, T), v = a.v.rows(0, T);
  Tensor dq = dq_.rows(0, T).view({T, q.dim(1), q.dim(2)}), dk = dk_.rows(0, T).view({T, k.dim(1), k.dim(2)});
  Tensor dv = dv_.rows(0, T).view({T, v.dim(1), v.dim(2)});
  Tensor lse(a.lse.data, DType::F32, {a.lse.dim(0), T}, a.lse.device);
  ops_->attention_bwd(d_attn.view({T, q.dim(1), q.dim(2)}), q, k, v, attn, lse, seq_, dq, dk, dv);
  ops_->rope_bwd(dq, seq_, theta);
  ops_->rope_bwd(dk, seq_, theta);
  Tensor xn1 = a.xn1.rows(0, T);
  ops_->gemm(Mat::of(dq), false, Mat::of(W.q_w), false, Mat::of(dx), 1.0f, 0.0f);
  ops_->gemm(Mat::of(dk), false, Mat::of(W.k_w), false, Mat::of(dx), 1.0f, 1.0f);
  ops_->gemm(Mat::of(dv), false, Mat::of(W.v_w), false, Mat::of(dx), 1.0f, 1.0f);
  lora(LoraTarget::q, xn1, Mat::of(dq), dx);
  lora(LoraTarget::k, xn1, Mat::of(dk), dx);
  lora(LoraTarget::v, xn1, Mat::of(dv), dx);
  ops_->rmsnorm_bwd(dx, h_in, W.in_norm, a.rstd1.rows(0, T), dh);  // dh = d h_in
}

void Qwen2Model::forward_to_hidden(const PackedBatch& b, uint64_t seed, bool train) {
  upload_batch(b);
  const int64_t T = T_, L = cfg_.num_hidden_layers;
  Tensor h0 = resid_[0].rows(0, T);
  ops_->embedding_fwd(ids_.rows(0, T), embed_, h0);
  if (train && opts_.neftune_alpha > 0) {
    // transformers' NEFTune: U(-a/sqrt(L*d), a/sqrt(L*d)) with L the row length of the batch it sees: the packed
    // row (padding-free) or, for a padded batch, its longest sequence.
    const float L = opts_.neftune_padded_rows ? float(b.max_seqlen) : float(T);
    const float scale = opts_.neftune_alpha / std::sqrt(L * float(cfg_.hidden_size));
    ops_->neftune_noise(h0, scale, rng::hash(seed, ~0ull));
  }
  for (int64_t l = 0; l < L; ++l) {
    Tensor h_out = resid_[size_t(l) + 1].rows(0, T);
    layer_forward(int(l), resid_[size_t(l)].rows(0, T), h_out, acts_for(int(l)), seed, train);
  }
  Tensor xf = xf_.rows(0, T), rstd_f = rstd_f_.rows(0, T);
  ops_->rmsnorm_fwd(resid_[size_t(L)].rows(0, T), final_norm_, float(cfg_.rms_norm_eps), xf, rstd_f);
}

static LossStats read_loss(Ops& ops, const Tensor& loss_sum, const Tensor& correct, int64_t targets) {
  LossStats s;
  float loss = 0;
  int32_t corr = 0;
  ops.copy_to_host(&loss, loss_sum.data, 4);
  ops.copy_to_host(&corr, correct.data, 4);
  s.loss_sum = loss;
  s.correct = corr;
  s.targets = targets;
  return s;
}

LossStats Qwen2Model::forward_backward(const PackedBatch& b, float grad_scale, uint64_t seed) {
  forward_to_hidden(b, seed, true);
  const int64_t T = T_, L = cfg_.num_hidden_layers;
  ops_->zero(loss_sum_);
  ops_->zero(correct_);
  Tensor dxf = dx_.rows(0, T), dh = dh_.rows(0, T);
  ops_->lm_head_ce(xf_.rows(0, T), lm_head_, targets_.rows(0, T), grad_scale, loss_sum_, correct_, &dxf);
  ops_->zero(dh);
  ops_->rmsnorm_bwd(dxf, resid_[size_t(L)].rows(0, T), final_norm_, rstd_f_.rows(0, T), dh);
  for (int64_t l = L - 1; l >= 0; --l) {
    const Tensor h_in = resid_[size_t(l)].rows(0, T);
    if (opts_.recompute) {
      Tensor h_out = resid_[size_t(l) + 1].rows(0, T);  // recomputed to the same values
      layer_forward(int(l), h_in, h_out, acts_[0], seed, true);
    }
    layer_backward(int(l), h_in, acts_for(int(l)), dh, seed);
  }
  return read_loss(*ops_, loss_sum_, correct_, b.num_targets());
}

LossStats Qwen2Model::forward_loss(const PackedBatch& b) {
  forward_to_hidden(b, 0, false);
  ops_->zero(loss_sum_);
  ops_->zero(correct_);
  ops_->lm_head_ce(xf_.rows(0, T_), lm_head_, targets_.rows(0, T_), 0.0f, loss_sum_, correct_, nullptr);
  return read_loss(*ops_, loss_sum_, correct_, b.num_targets());
}

std::vector<float> Qwen2Model::logits(const PackedBatch& b) {
  forward_to_hidden(b, 0, false);
  Arena scratch(*ops_, size_t(T_) * size_t(cfg_.vocab_size) * 4 + Arena::kAlign);
  Tensor out = scratch.take(DType::F32, {T_, cfg_.vocab_size});
  QSFT_CHECK(act_dtype_ == DType::F32, "logits() is the fp32 reference path");
  ops_->gemm(Mat::of(xf_.rows(0, T_)), false, Mat::of(lm_head_), true, Mat::of(out), 1.0f, 0.0f);
  return to_host(*ops_, out);
}

}  // namespace qsft
