// Frozen weights from a Hugging Face model directory, name by name with shapes checked, into the weights arena
// in the backend's dtype. gate_proj and up_proj are fused into one [2I, H] matrix here.
#include <vector>

#include "engine/base/half.h"
#include "engine/io/safetensors.h"
#include "engine/model/qwen2.h"

namespace qsft {

namespace {

// The tensor `name` (which must have dst's shape, or `shape` when given) into dst, converted to dst's dtype.
void load_into(Ops& ops, const TensorStore& store, const std::string& name, Tensor dst) {
  std::vector<int64_t> shape(dst.shape.begin(), dst.shape.begin() + dst.ndim);
  const TensorInfo& t = store.require(name, shape);
  if (dst.dtype == DType::F32) {
    std::vector<float> host(size_t(t.numel()));
    copy_to_f32(t, host.data());
    ops.copy_to_device(dst.data, host.data(), host.size() * 4);
  } else {
    QSFT_CHECK(dst.dtype == DType::BF16, "weights are F32 or BF16 on the device");
    std::vector<uint16_t> host(size_t(t.numel()));
    copy_to_bf16(t, host.data());
    ops.copy_to_device(dst.data, host.data(), host.size() * 2);
  }
}

}  // namespace

void Qwen2Model::load_weights(const std::string& model_dir) {
  TensorStore store = TensorStore::open_dir(model_dir);
  const int64_t I = cfg_.intermediate_size;
  load_into(*ops_, store, "model.embed_tokens.weight", embed_);
  load_into(*ops_, store, "model.norm.weight", final_norm_);
  // Tied: lm_head is the embedding (a redundant lm_head.weight in the checkpoint is ignored).
  if (!cfg_.tie_word_embeddings) load_into(*ops_, store, "lm_head.weight", lm_head_);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights& L = layers_[l];
    load_into(*ops_, store, p + "input_layernorm.weight", L.in_norm);
    load_into(*ops_, store, p + "post_attention_layernorm.weight", L.post_norm);
    load_into(*ops_, store, p + "self_attn.q_proj.weight", L.q_w);
    load_into(*ops_, store, p + "self_attn.k_proj.weight", L.k_w);
    load_into(*ops_, store, p + "self_attn.v_proj.weight", L.v_w);
    load_into(*ops_, store, p + "self_attn.q_proj.bias", L.q_b);
    load_into(*ops_, store, p + "self_attn.k_proj.bias", L.k_b);
    load_into(*ops_, store, p + "self_attn.v_proj.bias", L.v_b);
    load_into(*ops_, store, p + "self_attn.o_proj.weight", L.o_w);
    load_into(*ops_, store, p + "mlp.gate_proj.weight", L.gate_up_w.rows(0, I));
    load_into(*ops_, store, p + "mlp.up_proj.weight", L.gate_up_w.rows(I, 2 * I));
    load_into(*ops_, store, p + "mlp.down_proj.weight", L.down_w);
  }
}

}  // namespace qsft
