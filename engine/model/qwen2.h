// Qwen2Model: a Qwen2 decoder LM with LoRA, or with every weight trained (ModelOptions::full_finetuning), ready to
// train. It owns the arenas and what is carved from them: the frozen weights (Qwen2Weights), the trainable
// parameters and their gradients (TrainableParams, laid out by LoraLayout, or by FullLayout with the weights as
// views of the parameters' compute copy and a second Qwen2Weights of gradient views), the run state (RunState:
// activations and backward scratch) and the batch on the device (DeviceBatch); Qwen2Decoder computes over them.
// Every size is planned before step one from max_tokens: the same carving runs once to measure (what
// `qwen-sft plan` reports) and once for real.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/model/full_params.h"
#include "engine/model/qwen2_decoder.h"

namespace qsft {

// Bytes the model's arenas take (what `qwen-sft plan` reports; equal to what the arenas allocate): on the device,
// and host_weights in host memory mapped for the device.
struct ModelMemory {
  size_t weights = 0;      // frozen weights on the device
  size_t lora = 0;         // trainable parameters and gradients (F32; LoRA's, or all with full fine-tuning)
  size_t activations = 0;  // saved activations, backward scratch, the batch
  RunStateBytes state;     // activations by role (residual streams, saved, scratch); the rest is the batch
  size_t host_weights = 0;  // frozen weights in host-mapped memory: the untied, frozen embedding (or 0)
};

class Qwen2Model {
 public:
  Qwen2Model(Ops& ops, const Qwen2Config& cfg, const LoraConfig& lora, const ModelOptions& opts);
  // The arenas' sizes for a backend on `device`, computed by the same carving, without allocating anything.
  static ModelMemory plan_memory(const Qwen2Config& cfg, const LoraConfig& lora, const ModelOptions& opts,
                                 Device device);

  // Weights from a Hugging Face model directory (one or sharded safetensors), checked name by name: the frozen
  // weights, or with full fine-tuning the initial parameters.
  void load_weights(const std::string& model_dir);
  // Trainable parameters from / to the host, in LoraLayout order (full fine-tuning: FullLayout order).
  void set_lora_params(const std::vector<float>& host) {
    params_.upload(*ops_, host);
    params_changed_ = true;
  }
  std::vector<float> lora_params() const { return params_.download_params(*ops_); }
  std::vector<float> lora_grads() const { return params_.download_grads(*ops_); }

  // One micro-batch: forward, loss, backward. LoRA gradients accumulate (+=); the loss gradient is scaled by
  // grad_scale (1 / trained targets of the whole optimizer step). seed drives LoRA dropout and NEFTune.
  // grads_final (optional) is told during the backward as gradients become final (qwen2_decoder.h).
  LossStats forward_backward(const TokenBatchView& b, float grad_scale, uint64_t seed,
                             const GradsFinalFn* grads_final = nullptr);
  LossStats forward_loss(const TokenBatchView& b);     // eval: no dropout, no noise, no backward
  std::vector<float> logits(const TokenBatchView& b);  // [T, V] on the host (tests; allocates)
  void zero_grads() { ops_->zero(params_.grads()); }

  // Generation (engine/generate/): the final-norm hidden states of b (the run state's first T rows), each layer's
  // attention done by `attend` (a KV cache); then the logits F32 [R, V] of hidden rows `rows` (I32 [R] on the
  // device, indices into that forward's tokens), gathered through h [R, H] (scratch of activation_dtype()).
  void forward_hidden(const TokenBatchView& b, const AttentionFn& attend);
  // forward_hidden in two halves, for a forward recorded once and replayed (Ops::begin_capture): stage copies b and
  // what depends on it to the device (buffers whose addresses never change); forward_staged is device work only.
  void stage(const TokenBatchView& b);
  void forward_staged(const AttentionFn& attend);
  void logits_of_rows(const Tensor& rows, Tensor& h, Tensor& logits);
  DType activation_dtype() const { return act_dtype_; }
  Qwen2Weights& frozen_weights() { return weights_; }  // generation folds a LoRA adapter into them (--merge)

  const Qwen2Config& config() const { return cfg_; }
  const LoraLayout& lora_layout() const { return layout_; }
  const FullLayout& full_layout() const { return full_; }  // with full fine-tuning
  // The trainable parameters' layout: LoRA's adapters or, with full fine-tuning, every weight.
  const ParamLayout& param_layout() const { return opts_.full_finetuning ? full_.params() : layout_.params(); }
  Tensor& lora_param_tensor() {  // F32 [P] on the device; the caller may change it (the optimizer step)
    params_changed_ = true;
    return params_.params();
  }
  Tensor& lora_grad_tensor() { return params_.grads(); }
  ModelMemory allocated() const {
    return {weights_arena_.capacity(), params_arena_.capacity(), state_arena_.capacity(), state_.bytes,
            host_arena_.capacity()};
  }

 private:
  Qwen2Model(Ops* ops, Device device, const Qwen2Config& cfg, const LoraConfig& lora, const ModelOptions& opts);
  void carve(Arena& weights, Arena& params, Arena& state, Arena& host);
  // The embedding goes to the host arena: opts.embedding_on_host, an untied model, the embedding frozen.
  bool embedding_on_host() const {
    return opts_.embedding_on_host && !cfg_.tie_word_embeddings && !opts_.full_finetuning;
  }
  // b on the device, the RoPE table for it (dynamic scaling), the compute copy of the parameters up to date:
  // the decoder over them.
  Qwen2Decoder decoder_for(const TokenBatchView& b) {
    stage(b);
    return decoder();
  }
  Qwen2Decoder decoder();  // over the staged batch

  Ops* ops_;  // null when only planning memory
  Qwen2Config cfg_;
  LoraLayout layout_;
  ModelOptions opts_;
  FullLayout full_;  // full fine-tuning only
  Device device_;
  DType act_dtype_;
  ModelMemory memory_;
  bool params_changed_ = true;  // the compute copy of the parameters needs a refresh

  Arena weights_arena_, params_arena_, state_arena_;
  Arena host_arena_;  // host-mapped: the embedding when embedding_on_host()
  Qwen2Weights weights_;  // full fine-tuning: views of params_'s compute copy
  Qwen2Weights grads_;    // full fine-tuning: views of params_'s gradients
  TrainableParams params_;
  RunState state_;
  DeviceBatch batch_;
};

}  // namespace qsft
