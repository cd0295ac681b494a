#include "engine/model/full_params.h"

#include "engine/base/error.h"
#include "engine/io/safetensors.h"

namespace qsft {

int64_t FullWeight::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void FullLayout::add(const std::string& name, std::vector<int64_t> shape) {
  const int64_t rows = shape.size() == 2 ? shape[0] : 1, cols = shape.back();
  weights_.push_back({name, std::move(shape), params_.add(name, rows, cols)});
}

FullLayout::FullLayout(const Qwen2Config& cfg) : cfg_(cfg) {
  const int64_t H = cfg.hidden_size, I = cfg.intermediate_size, D = cfg.head_dim, V = cfg.vocab_size;
  const int64_t qo = int64_t(cfg.num_attention_heads) * D, kvo = int64_t(cfg.num_key_value_heads) * D;
  auto layer = [](int l) { return "model.layers." + std::to_string(l) + "."; };
  // weight decay
  add("model.embed_tokens.weight", {V, H});
  if (!cfg.tie_word_embeddings) add("lm_head.weight", {V, H});
  for (int l = 0; l < cfg.num_hidden_layers; ++l) {
    const std::string p = layer(l);
    add(p + "self_attn.q_proj.weight", {qo, H});  // q, k, v then: one [qo + 2 kvo, H] view (the fused qkv)
    add(p + "self_attn.k_proj.weight", {kvo, H});
    add(p + "self_attn.v_proj.weight", {kvo, H});
    add(p + "self_attn.o_proj.weight", {H, qo});
    add(p + "mlp.gate_proj.weight", {I, H});  // gate then up: one [2I, H] view
    add(p + "mlp.up_proj.weight", {I, H});
    add(p + "mlp.down_proj.weight", {H, I});
  }
  decay_end_ = params_.num_params();
  // no weight decay: norms and biases
  add("model.norm.weight", {H});
  for (int l = 0; l < cfg.num_hidden_layers; ++l) {
    const std::string p = layer(l);
    add(p + "input_layernorm.weight", {H});
    add(p + "post_attention_layernorm.weight", {H});
    if (cfg.qk_norm()) {
      add(p + "self_attn.q_norm.weight", {D});
      add(p + "self_attn.k_norm.weight", {D});
    }
    if (cfg.attention_bias) {  // consecutive: the fused qkv's bias
      add(p + "self_attn.q_proj.bias", {qo});
      add(p + "self_attn.k_proj.bias", {kvo});
      add(p + "self_attn.v_proj.bias", {kvo});
    }
    if (cfg.o_bias()) add(p + "self_attn.o_proj.bias", {H});
  }
}

const FullWeight& FullLayout::find(const std::string& name) const {
  for (const FullWeight& w : weights_)
    if (w.name == name) return w;
  QSFT_CHECK(false, "no trainable weight " + name);
  return weights_.front();
}

void FullLayout::bind(Qwen2Weights& w, const Tensor& flat) const {
  QSFT_CHECK(flat.numel() == num_params(), "flat buffer of another size than the layout");
  char* base = static_cast<char*>(flat.data);
  // The weight `name` as a tensor of `rows` rows (0: its own): a fused weight spans the consecutive segments of the
  // modules it stacks (gate/up: 2I rows; q/k/v: qo + 2 kvo rows, and their biases likewise).
  auto at = [&](const std::string& name, int64_t rows = 0) {
    const FullWeight& fw = find(name);
    char* p = base ? base + size_t(fw.offset) * dtype_size(flat.dtype) : nullptr;
    if (!rows) rows = fw.shape[0];
    QSFT_CHECK(fw.offset + rows * fw.numel() / fw.shape[0] <= num_params(), name + " spans past the layout");
    if (fw.shape.size() == 1) return Tensor(p, flat.dtype, {rows}, flat.device);
    return Tensor(p, flat.dtype, {rows, fw.shape[1]}, flat.device);
  };
  auto opt = [&](bool has, const std::string& name, int64_t rows = 0) { return has ? at(name, rows) : Tensor(); };
  const int64_t qkv = int64_t(cfg_.num_attention_heads + 2 * cfg_.num_key_value_heads) * cfg_.head_dim;
  w.embed = at("model.embed_tokens.weight");
  w.lm_head = cfg_.tie_word_embeddings ? w.embed : at("lm_head.weight");
  w.final_norm = at("model.norm.weight");
  w.layers.resize(size_t(cfg_.num_hidden_layers));
  for (int l = 0; l < cfg_.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".", a = p + "self_attn.";
    LayerWeights& L = w.layers[size_t(l)];
    L.in_norm = at(p + "input_layernorm.weight");
    L.post_norm = at(p + "post_attention_layernorm.weight");
    L.qkv = {at(a + "q_proj.weight", qkv), opt(cfg_.attention_bias, a + "q_proj.bias", qkv)};
    L.q_norm = opt(cfg_.qk_norm(), a + "q_norm.weight");
    L.k_norm = opt(cfg_.qk_norm(), a + "k_norm.weight");
    L.o = {at(a + "o_proj.weight"), opt(cfg_.o_bias(), a + "o_proj.bias")};
    L.gate_up = {at(p + "mlp.gate_proj.weight", 2 * cfg_.intermediate_size), {}};
    L.down = {at(p + "mlp.down_proj.weight"), {}};
  }
}

void FullLayout::upload(Ops& ops, const std::string& model_dir, const Tensor& params) const {
  QSFT_CHECK(params.dtype == DType::F32 && params.numel() == num_params(), "parameters of another layout");
  TensorStore store = TensorStore::open_dir(model_dir);
  std::vector<float> host;
  for (const FullWeight& w : weights_) {
    host.resize(size_t(w.numel()));
    copy_to_f32(store.require(w.name, w.shape), host.data());
    ops.copy_to_device(static_cast<float*>(params.data) + w.offset, host.data(), host.size() * sizeof(float));
  }
}

std::vector<float> FullLayout::load(const std::string& model_dir) const {
  TensorStore store = TensorStore::open_dir(model_dir);
  std::vector<float> host(static_cast<size_t>(num_params()));
  for (const FullWeight& w : weights_) copy_to_f32(store.require(w.name, w.shape), host.data() + w.offset);
  return host;
}

}  // namespace qsft
