// Full fine-tuning: every weight of the model is trainable. FullLayout lays each one out, under its Hugging Face
// state-dict name, in the one flat F32 TrainableParams buffer (one optimizer launch, one gradient-norm reduction,
// one ZeRO-1 shard map by offset), and binds Qwen2Weights views onto it: the weights the decoder reads are views of
// the compute copy (bf16 on the GPU, the F32 master weights on the CPU) and a second Qwen2Weights holds views of the
// gradients, shaped like the weights, which the decoder's backward accumulates into.
//
// Order: the weights that take weight decay first (embedding, untied lm_head, every Linear weight), then those that
// do not (norm weights, biases), as transformers' Trainer groups them (get_decay_parameter_names: "bias" and the
// norms are excluded), so the optimizer's two groups are two ranges: [0, decay_end) and [decay_end, P).
// gate_proj and up_proj are adjacent, so their [2I, H] stack is one view (the fused gate/up GEMM).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/io/model_config.h"
#include "engine/model/params.h"
#include "engine/model/qwen2_weights.h"
#include "engine/ops.h"

namespace qsft {

struct FullWeight {
  std::string name;            // its Hugging Face key ("model.layers.0.self_attn.q_proj.weight")
  std::vector<int64_t> shape;  // as stored: [out, in] or [n]
  int64_t offset = 0;          // floats into the flat buffer
  int64_t numel() const;
};

class FullLayout {
 public:
  FullLayout() = default;
  explicit FullLayout(const Qwen2Config& cfg);

  const std::vector<FullWeight>& weights() const { return weights_; }
  const ParamLayout& params() const { return params_; }
  int64_t num_params() const { return params_.num_params(); }
  int64_t decay_end() const { return decay_end_; }        // [0, decay_end) take weight decay, the rest do not
  const FullWeight& find(const std::string& name) const;  // a logic error when absent

  // w's tensors as views of `flat` (F32 params or grads, or the BF16 compute copy: [P] of any dtype); rope untouched.
  void bind(Qwen2Weights& w, const Tensor& flat) const;
  // Every weight from a Hugging Face model directory (one or sharded safetensors), shapes checked, converted to
  // F32: into the flat F32 buffer `params` on the device one weight at a time (no host copy of the whole model) ...
  void upload(Ops& ops, const std::string& model_dir, const Tensor& params) const;
  // ... or into a host vector in layout order (a checkpoint's master weights).
  std::vector<float> load(const std::string& model_dir) const;

 private:
  void add(const std::string& name, std::vector<int64_t> shape);
  Qwen2Config cfg_;
  std::vector<FullWeight> weights_;
  ParamLayout params_;
  int64_t decay_end_ = 0;
};

}  // namespace qsft
