#include "engine/model/qwen2_weights.h"

#include "engine/base/half.h"
#include "engine/io/bnb_checkpoint.h"
#include "engine/io/safetensors.h"
#include "engine/model/rope_freqs.h"
#include "kernels/nf4.h"

namespace qsft {

LinearWeight carve_linear(Arena& a, const std::vector<int64_t>& part_rows, int64_t in, bool has_bias, DType w,
                          const WeightQuant& quant) {
  QSFT_CHECK(!part_rows.empty() && part_rows.size() <= size_t(cpu::kQuant4MaxParts), "a Linear of 1 to 3 parts");
  int64_t out = 0;
  for (int64_t r : part_rows) out += r;
  LinearWeight L;
  if (quant.format == WeightFormat::dense) {
    L.w = a.take(w, {out, in});
  } else {
    for (int64_t r : part_rows)
      if (in % 2 || (r * in) % cpu::kQuant4Block)
        throw InputError("load_in_4bit: a Linear [" + std::to_string(r) + ", " + std::to_string(in) +
                         "] does not split into bitsandbytes' blocks of 64 values");
    L.q.format = quant.format;
    L.q.compute = w;
    L.q.parts = int(part_rows.size());
    for (size_t p = 0; p < part_rows.size(); ++p) L.q.part_rows[p] = part_rows[p];
    L.w = a.take(DType::U8, {out, in / 2});
    L.q.absmax = a.take(quant.double_quant ? DType::U8 : DType::F32, {out * in / cpu::kQuant4Block});
    if (quant.double_quant) L.q.absmax2 = a.take(DType::F32, {L.absmax2_of(L.q.parts)});
  }
  if (has_bias) L.bias = a.take(w, {out});
  return L;
}

LinearWeight carve_linear(Arena& a, int64_t out, int64_t in, bool has_bias, DType w, const WeightQuant& quant,
                          int parts) {
  return carve_linear(a, std::vector<int64_t>(size_t(parts), out / parts), in, has_bias, w, quant);
}

void quantize_linear_part(Ops& ops, const float* values, LinearWeight& W, int p) {
  const int64_t rows = W.q.part_rows[p], row0 = W.part_row0(p), n = rows * W.in(), nb = W.part_blocks(p);
  const int64_t n2 = (nb + 255) / 256, b0 = row0 * W.in() / cpu::kQuant4Block;
  std::vector<uint8_t> codes(static_cast<size_t>(n / 2));
  std::vector<float> absmax(static_cast<size_t>(nb));
  cpu::quantize_4bit(values, n, W.q.format == WeightFormat::nf4 ? cpu::Quant4Type::nf4 : cpu::Quant4Type::fp4,
                     codes.data(), absmax.data());
  ops.copy_to_device(W.w.rows(row0, row0 + rows).data, codes.data(), codes.size());
  char* absmax_dst = static_cast<char*>(W.q.absmax.data);
  if (!W.q.double_quant()) {
    ops.copy_to_device(absmax_dst + b0 * 4, absmax.data(), absmax.size() * 4);
    return;
  }
  W.q.offset[p] = cpu::absmax_offset(absmax.data(), nb);
  std::vector<uint8_t> qabsmax(static_cast<size_t>(nb));
  std::vector<float> absmax2(static_cast<size_t>(n2));
  cpu::quantize_absmax(absmax.data(), nb, W.q.offset[p], qabsmax.data(), absmax2.data());
  ops.copy_to_device(absmax_dst + b0, qabsmax.data(), qabsmax.size());
  ops.copy_to_device(static_cast<char*>(W.q.absmax2.data) + W.absmax2_of(p) * 4, absmax2.data(), absmax2.size() * 4);
}

void Qwen2Weights::carve(Arena& a, const Qwen2Config& cfg, DType w, const WeightQuant& quant, Arena* embed_a) {
  const int64_t H = cfg.hidden_size, I = cfg.intermediate_size, D = cfg.head_dim, V = cfg.vocab_size;
  const int64_t qo = int64_t(cfg.num_attention_heads) * D, kvo = int64_t(cfg.num_key_value_heads) * D;
  rope.inv_freq = a.take(DType::F32, {D / 2});
  QSFT_CHECK(!embed_a || !cfg.tie_word_embeddings, "a tied embedding is lm_head: it stays on the device");
  embed = (embed_a ? *embed_a : a).take(w, {V, H});
  final_norm = a.take(w, {H});
  lm_head = cfg.tie_word_embeddings ? embed : a.take(w, {V, H});
  layers.resize(size_t(cfg.num_hidden_layers));
  for (LayerWeights& L : layers) {
    L.in_norm = a.take(w, {H});
    L.post_norm = a.take(w, {H});
    L.qkv = carve_linear(a, {qo, kvo, kvo}, H, cfg.attention_bias, w, quant);
    if (cfg.qk_norm()) {
      L.q_norm = a.take(w, {D});
      L.k_norm = a.take(w, {D});
    }
    L.o = carve_linear(a, H, qo, cfg.o_bias(), w, quant);
    L.gate_up = carve_linear(a, 2 * I, H, false, w, quant, 2);
    L.down = carve_linear(a, H, I, false, w, quant);
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

// Part p of the 4-bit Linear W from the tensor `name` [W.q.part_rows[p], in]: as saved when the folder holds it
// in bitsandbytes' 4-bit form, else quantized from its values.
void load_quant4_part(Ops& ops, const TensorStore& store, const std::string& name, LinearWeight& W, int p) {
  if (load_saved_4bit_part(ops, store, name, W, p)) return;
  const int64_t rows = W.q.part_rows[p];
  const TensorInfo& t = store.require(name, {rows, W.in()});
  std::vector<float> host(static_cast<size_t>(rows * W.in()));
  copy_to_f32(t, host.data());
  quantize_linear_part(ops, host.data(), W, p);
}

// The Linear W from the tensors `names` (one, or the modules it stacks by rows: gate_proj and up_proj; q_proj,
// k_proj and v_proj) in W's format, each `part_rows[p]` rows; their biases (`bias_names`, when W has a bias) too.
void load_linear(Ops& ops, const TensorStore& store, const std::vector<std::string>& names,
                 const std::vector<int64_t>& part_rows, LinearWeight& W,
                 const std::vector<std::string>& bias_names = {}) {
  int64_t row0 = 0;
  for (size_t p = 0; p < names.size(); ++p) {
    const int64_t row1 = row0 + part_rows[p];
    if (W.quantized()) {
      load_quant4_part(ops, store, names[p], W, int(p));
    } else {
      load_into(ops, store, names[p], W.w.rows(row0, row1));
    }
    if (!W.bias.empty()) load_into(ops, store, bias_names[p], W.bias.rows(row0, row1));
    row0 = row1;
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
  load_into(ops, store, "model.embed_tokens.weight", embed);
  load_into(ops, store, "model.norm.weight", final_norm);
  // Tied: lm_head is the embedding (a redundant lm_head.weight in the checkpoint is ignored).
  if (!cfg.tie_word_embeddings) load_into(ops, store, "lm_head.weight", lm_head);
  const int64_t D = cfg.head_dim, qo = cfg.num_attention_heads * D, kvo = cfg.num_key_value_heads * D;
  const int64_t H = cfg.hidden_size, I = cfg.intermediate_size;
  for (size_t l = 0; l < layers.size(); ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".", a = p + "self_attn.";
    LayerWeights& L = layers[l];
    load_into(ops, store, p + "input_layernorm.weight", L.in_norm);
    load_into(ops, store, p + "post_attention_layernorm.weight", L.post_norm);
    load_linear(ops, store, {a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"}, {qo, kvo, kvo}, L.qkv,
                {a + "q_proj.bias", a + "k_proj.bias", a + "v_proj.bias"});
    for (auto [name, t] :
         {std::pair{"o_proj.bias", &L.o.bias}, {"q_norm.weight", &L.q_norm}, {"k_norm.weight", &L.k_norm}})
      if (!t->empty()) load_into(ops, store, a + name, *t);
    load_linear(ops, store, {a + "o_proj.weight"}, {H}, L.o);
    load_linear(ops, store, {p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"}, {I, I}, L.gate_up);
    load_linear(ops, store, {p + "mlp.down_proj.weight"}, {H}, L.down);
  }
}

}  // namespace qsft
