#include "engine/model/qwen2_weights.h"

#include "engine/base/half.h"
#include "engine/io/safetensors.h"
#include "engine/model/rope_freqs.h"

namespace qsft {

void Qwen2Weights::carve(Arena& a, const Qwen2Config& cfg, DType w) {
  const int64_t H = cfg.hidden_size, I = cfg.intermediate_size, D = cfg.head_dim, V = cfg.vocab_size;
  const int64_t qo = int64_t(cfg.num_attention_heads) * D, kvo = int64_t(cfg.num_key_value_heads) * D;
  rope.inv_freq = a.take(DType::F32, {D / 2});
  embed = a.take(w, {V, H});
  final_norm = a.take(w, {H});
  lm_head = cfg.tie_word_embeddings ? embed : a.take(w, {V, H});
  layers.resize(size_t(cfg.num_hidden_layers));
  for (LayerWeights& L : layers) {
    L.in_norm = a.take(w, {H});
    L.post_norm = a.take(w, {H});
    auto bias = [&](bool has, int64_t n) { return has ? a.take(w, {n}) : Tensor(); };
    L.q = {a.take(w, {qo, H}), bias(cfg.attention_bias, qo)};
    L.k = {a.take(w, {kvo, H}), bias(cfg.attention_bias, kvo)};
    L.v = {a.take(w, {kvo, H}), bias(cfg.attention_bias, kvo)};
    if (cfg.qk_norm()) {
      L.q_norm = a.take(w, {D});
      L.k_norm = a.take(w, {D});
    }
    L.o = {a.take(w, {H, qo}), bias(cfg.o_bias(), H)};
    L.gate_up = {a.take(w, {2 * I, H}), {}};
    L.down = {a.take(w, {H, I}), {}};
  }
}

namespace {

// The tensor `name`, which must have dst's shape, into dst, converted to dst's dtype.
void load_into(Ops& ops, const TensorStore& store, const std::string& name, const Tensor& dst) {
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

void Qwen2Weights::set_rope(Ops& ops, const Qwen2Config& cfg, int64_t seq_len) {
  const RopeTable t = rope_table(cfg, seq_len);
  ops.copy_to_device(rope.inv_freq.data, t.inv_freq.data(), t.inv_freq.size() * 4);
  rope.attention_scaling = t.attention_scaling;
}

void Qwen2Weights::load(Ops& ops, const Qwen2Config& cfg, const std::string& model_dir) {
  set_rope(ops, cfg, cfg.max_position_embeddings);
  TensorStore store = TensorStore::open_dir(model_dir);
  const int64_t I = cfg.intermediate_size;
  load_into(ops, store, "model.embed_tokens.weight", embed);
  load_into(ops, store, "model.norm.weight", final_norm);
  // Tied: lm_head is the embedding (a redundant lm_head.weight in the checkpoint is ignored).
  if (!cfg.tie_word_embeddings) load_into(ops, store, "lm_head.weight", lm_head);
  for (size_t l = 0; l < layers.size(); ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const LayerWeights& L = layers[l];
    load_into(ops, store, p + "input_layernorm.weight", L.in_norm);
    load_into(ops, store, p + "post_attention_layernorm.weight", L.post_norm);
    load_into(ops, store, p + "self_attn.q_proj.weight", L.q.w);
    load_into(ops, store, p + "self_attn.k_proj.weight", L.k.w);
    load_into(ops, store, p + "self_attn.v_proj.weight", L.v.w);
    for (auto [name, t] : {std::pair{"q_proj.bias", &L.q.bias},
                           {"k_proj.bias", &L.k.bias},
                           {"v_proj.bias", &L.v.bias},
                           {"o_proj.bias", &L.o.bias},
                           {"q_norm.weight", &L.q_norm},
                           {"k_norm.weight", &L.k_norm}})
      if (!t->empty()) load_into(ops, store, p + "self_attn." + name, *t);
    load_into(ops, store, p + "self_attn.o_proj.weight", L.o.w);
    load_into(ops, store, p + "mlp.gate_proj.weight", L.gate_up.w.rows(0, I));
    load_into(ops, store, p + "mlp.up_proj.weight", L.gate_up.w.rows(I, 2 * I));
    load_into(ops, store, p + "mlp.down_proj.weight", L.down.w);
  }
}

}  // namespace qsft
