#include "engine/model/qwen2.h"

#include "engine/io/bnb_checkpoint.h"
#include "kernels/cross_entropy_scratch.h"

namespace qsft {

void Qwen2Model::load_weights(const std::string& model_dir) {
  if (!opts_.full_finetuning) return weights_.load(*ops_, cfg_, model_dir);
  weights_.set_rope(*ops_, cfg_, cfg_.max_position_embeddings);
  full_.upload(*ops_, model_dir, params_.params());
  params_changed_ = true;
}

Qwen2Model::Qwen2Model(Ops& ops, const Qwen2Config& cfg, const LoraConfig& lora, const ModelOptions& opts)
    : Qwen2Model(&ops, ops.device(), cfg, lora, opts) {}

Qwen2Model::Qwen2Model(Ops* ops, Device device, const Qwen2Config& cfg, const LoraConfig& lora,
                       const ModelOptions& opts)
    : ops_(ops),
      cfg_(cfg),
      layout_(cfg, opts.full_finetuning ? LoraConfig{} : lora),  // full fine-tuning: no adapters
      opts_(opts),
      device_(device) {
  opts_.quant = resolve_weight_quant(cfg, opts.quant, opts.full_finetuning);  // a folder saved in 4-bit form
  if (opts.full_finetuning) full_ = FullLayout(cfg);
  // The cpu backend is the fp32 reference; the cuda backend keeps activations and frozen weights in bf16.
  act_dtype_ = device == Device::CPU ? DType::F32 : DType::BF16;
  Arena measure_w, measure_p, measure_s, measure_h;
  carve(measure_w, measure_p, measure_s, measure_h);
  memory_ = {measure_w.used(), measure_p.used(), measure_s.used(), state_.bytes, measure_h.used()};
  if (!ops_) return;  // planning only
  weights_arena_ = Arena(*ops_, memory_.weights);
  params_arena_ = Arena(*ops_, memory_.lora);
  state_arena_ = Arena(*ops_, memory_.activations);
  if (memory_.host_weights) host_arena_ = Arena(*ops_, memory_.host_weights, MemoryKind::host_mapped);
  carve(weights_arena_, params_arena_, state_arena_, host_arena_);
}

void Qwen2Model::carve(Arena& weights, Arena& params, Arena& state, Arena& host) {
  if (opts_.full_finetuning) {  // every weight a view of the parameters' compute copy, its gradient of the grads
    weights_.rope.inv_freq = weights.take(DType::F32, {cfg_.head_dim / 2});
    params_.carve(params, full_.num_params(), act_dtype_);
    full_.bind(weights_, params_.compute());
    full_.bind(grads_, params_.grads());
  } else {
    // On cuda the forward's gather reads T rows of the host-mapped table over PCIe: T H 2 bytes, 28 MiB at 4096
    // tokens of a 7B (H 3584), about 1 ms at 25 GB/s, for the 1 GiB (152064 x 3584 bf16) it leaves free.
    weights_.carve(weights, cfg_, act_dtype_, opts_.quant, embedding_on_host() ? &host : nullptr);
    params_.carve(params, layout_.num_params(), act_dtype_, !opts_.inference);
  }
  // The cuda lm_head_ce's scratch is lent from the run state (the cpu reference brings its own).
  const size_t loss_scratch =
      device_ == Device::CUDA ? cuda::CeScratch(opts_.max_tokens, cfg_.hidden_size, cfg_.vocab_size, act_dtype_).total
                              : 0;
  state_.carve(state, cfg_, layout_.config(), opts_.max_tokens, opts_.recomputed_layers(cfg_.num_hidden_layers),
               act_dtype_, !opts_.inference, loss_scratch);
  batch_.carve(state, opts_.max_tokens);
}

ModelMemory Qwen2Model::plan_memory(const Qwen2Config& cfg, const LoraConfig& lora, const ModelOptions& opts,
                                    Device device) {
  return Qwen2Model(nullptr, device, cfg, lora, opts).memory_;
}

void Qwen2Model::stage(const TokenBatchView& b) {
  batch_.upload(*ops_, b, cfg_.vocab_size);
  // Dynamic NTK RoPE depends on the batch: transformers rebuilds the table from max(position_ids) + 1, which for a
  // packed batch is its longest sequence. Every other RoPE type keeps the table load() uploaded.
  if (cfg_.rope_scaling.type == "dynamic") weights_.set_rope(*ops_, cfg_, b.max_seqlen);
  if (params_changed_) params_.refresh_compute(*ops_);
  params_changed_ = false;
}

Qwen2Decoder Qwen2Model::decoder() {
  const Qwen2Weights* grads = opts_.full_finetuning ? &grads_ : nullptr;
  return Qwen2Decoder(*ops_, {cfg_, opts_, weights_, grads, layout_, params_, state_, batch_});
}

LossStats Qwen2Model::forward_backward(const TokenBatchView& b, float grad_scale, uint64_t seed,
                                       const GradsFinalFn* grads_final) {
  QSFT_CHECK(!opts_.inference, "the model was built for inference: it has no backward");
  Qwen2Decoder d = decoder_for(b);
  d.forward_to_hidden(seed, true);
  return d.loss_and_backward(grad_scale, seed, grads_final);
}

LossStats Qwen2Model::forward_loss(const TokenBatchView& b) {
  Qwen2Decoder d = decoder_for(b);
  d.forward_to_hidden(0, false);
  return d.loss();
}

void Qwen2Model::forward_hidden(const TokenBatchView& b, const AttentionFn& attend) {
  stage(b);
  forward_staged(attend);
}

void Qwen2Model::forward_staged(const AttentionFn& attend) {
  Qwen2Decoder d = decoder();
  d.set_attention(&attend);
  d.forward_to_hidden(0, false);
}

void Qwen2Model::logits_of_rows(const Tensor& rows, Tensor& h, Tensor& logits) {
  ops_->embedding_fwd(rows, state_.xf.rows(0, batch_.tokens()), h);  // a row gather
  ops_->gemm(Mat::of(h), false, Mat::of(weights_.lm_head), true, Mat::of(logits), 1.0f, 0.0f);
}

std::vector<float> Qwen2Model::logits(const TokenBatchView& b) {
  QSFT_CHECK(act_dtype_ == DType::F32, "logits() is the fp32 reference path");
  decoder_for(b).forward_to_hidden(0, false);
  const int64_t T = batch_.tokens();
  Arena scratch(*ops_, size_t(T) * size_t(cfg_.vocab_size) * 4 + Arena::kAlign);
  Tensor out = scratch.take(DType::F32, {T, cfg_.vocab_size});
  ops_->gemm(Mat::of(state_.xf.rows(0, T)), false, Mat::of(weights_.lm_head), true, Mat::of(out), 1.0f, 0.0f);
  std::vector<float> host(size_t(out.numel()));
  ops_->copy_to_host(host.data(), out.data, host.size() * 4);
  return host;
}

}  // namespace qsft
