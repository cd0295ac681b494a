// The Qwen2/Qwen3 decoder's forward and backward (transformers' Qwen2ForCausalLM and Qwen3ForCausalLM with PEFT
// LoRA), written once over Ops. Qwen3 adds an RMSNorm over each head of q and k before RoPE. It owns nothing: it reads
// the weights and the trainable LoRA parameters, writes the run state and the gradients (LoRA's, or with full
// fine-tuning every weight's), for the batch on the device.
//   h = embed[ids]                                   (+ NEFTune noise when training with it)
//   per layer: h += o_proj(attn(rope(qkv(rmsnorm1(h)))));  h += down(silu(gate(x)) * up(x)), x = rmsnorm2(h)
//   logits = rmsnorm_final(h) @ lm_head^T             (never materialised in training: lm_head_ce)
#pragma once
#include <algorithm>
#include <array>
#include <functional>
#include <initializer_list>

#include "engine/io/model_config.h"
#include "engine/model/device_batch.h"
#include "engine/model/lora.h"
#include "engine/model/lora_linear.h"
#include "engine/model/params.h"
#include "engine/model/qwen2_weights.h"
#include "engine/model/run_state.h"

namespace qsft {

// QSFT_EMBEDDING_ON_DEVICE set (not "0") in the environment: ModelOptions::embedding_on_host defaults to false.
bool embedding_forced_on_device();

struct ModelOptions {
  int64_t max_tokens = 4096;         // tokens of the largest micro-batch
  bool recompute = false;            // activation checkpointing: keep layer inputs only, redo the layer in backward
  int recompute_layers = -1;         // with recompute: the first this many layers are redone, the others keep their
                                     // activations; -1 = all (gradient_checkpointing "auto" picks it: plan.h)
  float neftune_alpha = 0.0f;        // NEFTune noise on the embeddings while training (0 = off)
  bool neftune_padded_rows = false;  // NEFTune's L: false = the packed row (all T tokens), true = the longest
                                     // sequence (the row length of the padded batch transformers would build)
  bool full_finetuning = false;      // train every weight (FullLayout) instead of LoRA adapters
  WeightQuant quant;                 // the frozen Linear weights' format (QLoRA: 4-bit)
  bool inference = false;            // forward only (generation): no backward scratch, no gradients, the layers'
                                     // residual streams alternate between two buffers
  // A frozen embedding table that is not also lm_head (untied model, LoRA) kept in host memory mapped for the
  // device (Ops::alloc_host_mapped): the forward gathers T rows of it per micro-batch. false keeps it on the device
  // (config "embedding_on_host": false; QSFT_EMBEDDING_ON_DEVICE=1 makes false the default).
  bool embedding_on_host = !embedding_forced_on_device();

  // R, the layers [0, R) of L that the backward recomputes; whether layer l is one of them.
  int recomputed_layers(int L) const {
    return !recompute ? 0 : recompute_layers < 0 ? L : std::min(recompute_layers, L);
  }
  bool recomputes(int64_t layer) const { return recompute && (recompute_layers < 0 || layer < recompute_layers); }
};

struct LossStats {
  double loss_sum = 0;  // summed cross-entropy over trained targets
  int64_t correct = 0;  // argmax == target among them
  int64_t targets = 0;  // how many trained targets
};

// The attention of a layer, replaceable (generation: a KV cache's prefill and decode steps). It gets what
// attention_fwd gets: q [T, n, D], k, v [T, nkv, D] after RoPE, the batch's layout, and writes attn [T, n, D]
// (lse [n, T] is only needed by a backward).
using AttentionFn = std::function<void(int layer, const Tensor& q, const Tensor& k, const Tensor& v,
                                       const SeqLayout& seq, Tensor& attn, Tensor& lse)>;

// Called by the backward when gradients are final (nothing later adds to them): with layer = L (the layer count)
// after the LM head and the final norm, with l after layer l (so every layer >= l is done), with -1 after the
// embedding (every gradient is). Data parallel starts reducing them then (engine/dist/grad_buckets.h).
using GradsFinalFn = std::function<void(int layer)>;

struct Qwen2Parts {  // what a decoder reads and writes
  const Qwen2Config& cfg;
  const ModelOptions& opts;
  const Qwen2Weights& weights;
  const Qwen2Weights* grads;  // full fine-tuning: the weights' gradients (F32 views, +=); null for LoRA
  const LoraLayout& lora;
  TrainableParams& params;
  RunState& state;
  DeviceBatch& batch;
};

// q, k and v as strided head views of the column slices of a fused [T, (n + 2 nkv) D] tensor (the QKV projection or
// its gradient): [T, n, D], [T, nkv, D], [T, nkv, D], and q's and k's heads together [T, n + nkv, D] (adjacent
// columns: RoPE in one call).
struct QkvHeads {
  Tensor q, k, v, qk;
};

class Qwen2Decoder {
 public:
  Qwen2Decoder(Ops& ops, const Qwen2Parts& parts) : ops_(ops), p_(parts) {}

  // Embedding, every layer and the final norm of the uploaded batch: fills state.resid, the layer acts and xf.
  void forward_to_hidden(uint64_t seed, bool train);
  // Each layer's attention through `attend` instead of attention_fwd (inference only; null: attention_fwd).
  void set_attention(const AttentionFn* attend) { attend_ = attend; }
  // LM head + CE on xf, then the backward through every layer; the trainable parameters' gradients accumulate into
  // params.grads(); grads_final (optional) is told as they become final.
  LossStats loss_and_backward(float grad_scale, uint64_t seed, const GradsFinalFn* grads_final = nullptr);
  LossStats loss();  // LM head + CE only (eval)

 private:
  LoraBranch branch(const LoraSlot& s, uint64_t seed, bool train) const;
  // The adapted members of group g of layer l; outs: the outputs of all the group's targets in target order (or
  // their gradients), member_outs: the members' among them.
  LoraStack stack(int layer, LoraGroup g, uint64_t seed, bool train, std::initializer_list<Tensor> outs,
                  std::array<Tensor, kMaxLoraGroupSize>& member_outs) const;
  // The backward of group g's LoRA branches reading x: dy as in stack's outs, the input gradient added to dx (or
  // written).
  void lora_bwd(int l, LoraGroup g, uint64_t seed, const Tensor& x, std::initializer_list<Tensor> dy, Tensor& dx,
                LayerActs& a, bool accumulate_dx = true);
  // y = x W^T + b (+ residual) with group g's LoRA added, outs as in stack's (together all of y's columns). Without
  // a residual and with every target of the group adapted, the LoRA products are written first and the base GEMM
  // adds onto them (beta 1, which costs a compute-bound GEMM nothing): one pass over y fewer than adding them after
  // (lora_first()).
  void linear_lora_fwd(int l, LoraGroup g, uint64_t seed, bool train, const Tensor& x, const LinearWeight& W, Tensor& y,
                       std::initializer_list<Tensor> outs, LayerActs& a, const Tensor* residual = nullptr);
  // dx = dy W (+ group g's LoRA input gradient, and its parameter gradients): with LoRA on the group, its dx written
  // first and the base dgrad accumulating onto it (lora_first()). dys: dy as stack's outs.
  void dgrad_lora_bwd(int l, LoraGroup g, uint64_t seed, const Tensor& x, const Tensor& dy, const LinearWeight& W,
                      std::initializer_list<Tensor> dys, Tensor& dx, LayerActs& a);
  // Qwen3's q, k head norms of layer l on qkv's strided head views x (qwen2_decoder.cpp); the backward in place on
  // d's q, k (plus the norms' weight gradients into G when full fine-tuning).
  QkvHeads head_norms_fwd(int l, const QkvHeads& x);
  void head_norms_bwd(int l, const QkvHeads& x, const QkvHeads& d, const LayerWeights* G);
  void norm_wgrad(const Tensor& dy, const Tensor& x, const Tensor& rstd, const Tensor& dw);
  QkvHeads split_qkv(const Tensor& qkv) const;
  void attend_packed(int l, Tensor q, Tensor k, Tensor v, const SeqLayout& seq, Tensor& attn, Tensor& lse);
  // h_out = layer(h_in); saves into a.
  void layer_forward(int l, const Tensor& h_in, Tensor& h_out, LayerActs& a, uint64_t seed, bool train);
  // dh: gradient w.r.t. the layer output on entry, w.r.t. its input on exit.
  void layer_backward(int l, const Tensor& h_in, LayerActs& a, Tensor& dh, uint64_t seed);
  LossStats read_loss();

  Ops& ops_;
  Qwen2Parts p_;
  const AttentionFn* attend_ = nullptr;
};

}  // namespace qsft
