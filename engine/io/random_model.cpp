#include "engine/io/random_model.h"

#include <cmath>
#include <memory>
#include <numbers>

#include "engine/base/error.h"
#include "engine/base/half.h"
#include "engine/base/json_writer.h"
#include "engine/io/safetensors.h"
#include "kernels/rng.h"

namespace qsft {

namespace {

Qwen2Config dims(int H, int I, int L, int heads, int kv, int head_dim, int V, bool tied, double theta,
                 ModelArch arch = ModelArch::qwen2) {
  Qwen2Config c;
  c.arch = arch;
  c.attention_bias = arch == ModelArch::qwen2;
  c.hidden_size = H;
  c.intermediate_size = I;
  c.num_hidden_layers = L;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv;
  c.head_dim = head_dim;
  c.vocab_size = V;
  c.tie_word_embeddings = tied;
  c.rope_theta = theta;
  c.rms_norm_eps = 1e-6;
  c.max_position_embeddings = 32768;
  return c;
}

// One tensor's values in dtype dt: N(0, std) by Box-Muller over (seed, index) pairs, or a constant when std == 0.
// Written straight into the uninitialised buffer by every thread (no zero fill, no fp32 copy, no serial cast: the
// 7B preset's 15 GB took ~60 s on the H200 machine with those).
std::unique_ptr<std::byte[]> random_values(DType dt, int64_t n, float std, float constant, uint64_t seed) {
  auto bytes = std::make_unique_for_overwrite<std::byte[]>(size_t(n) * dtype_size(dt));
  float* f32 = dt == DType::F32 ? reinterpret_cast<float*>(bytes.get()) : nullptr;
  uint16_t* bf16 = dt == DType::BF16 ? reinterpret_cast<uint16_t*>(bytes.get()) : nullptr;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float v = constant;
    if (std != 0.0f) {
      const float u1 = rng::uniform(seed, uint64_t(2 * i)), u2 = rng::uniform(seed, uint64_t(2 * i + 1));
      const float r = std::sqrt(-2.0f * std::log1p(-u1));  // 1 - u1 in (0, 1]
      v = std * r * std::cos(2.0f * std::numbers::pi_v<float> * u2);
    }
    if (f32)
      f32[i] = v;
    else
      bf16[i] = f32_to_bf16(v);
  }
  return bytes;
}

}  // namespace

const std::vector<ModelPreset>& model_presets() {
  // name, (hidden, intermediate, layers, heads, kv heads, head_dim, vocab, tied, rope_theta), dtype
  static const std::vector<ModelPreset> presets = {
      {"tiny", dims(128, 384, 4, 4, 2, 32, 0, true, 1e6), DType::F32},
      {"qwen2.5-0.5b", dims(896, 4864, 24, 14, 2, 64, 151936, true, 1e6), DType::BF16},
      {"qwen2.5-1.5b", dims(1536, 8960, 28, 12, 2, 128, 151936, true, 1e6), DType::BF16},
      {"qwen2.5-7b", dims(3584, 18944, 28, 28, 4, 128, 152064, false, 1e6), DType::BF16},
      {"qwen2.5-14b", dims(5120, 13824, 48, 40, 8, 128, 152064, false, 1e6), DType::BF16},
      {"qwen2.5-72b", dims(8192, 29568, 80, 64, 8, 128, 152064, false, 1e6), DType::BF16},
      {"tiny-qwen3", dims(128, 384, 4, 4, 2, 48, 0, true, 1e6, ModelArch::qwen3), DType::F32},
      {"qwen3-0.6b", dims(1024, 3072, 28, 16, 8, 128, 151936, true, 1e6, ModelArch::qwen3), DType::BF16},
      {"qwen3-8b", dims(4096, 12288, 36, 32, 8, 128, 151936, false, 1e6, ModelArch::qwen3), DType::BF16},
  };
  return presets;
}

const ModelPreset& find_preset(const std::string& name) {
  std::string names;
  for (const ModelPreset& p : model_presets()) {
    if (p.name == name) return p;
    names += (names.empty() ? "" : ", ") + p.name;
  }
  throw InputError("unknown preset \"" + name + "\" (presets: " + names + ")");
}

void write_random_model(const std::filesystem::path& dir, const Qwen2Config& c, DType dtype, uint64_t seed) {
  QSFT_CHECK(dtype == DType::F32 || dtype == DType::BF16, "random models are F32 or BF16");
  std::filesystem::create_directories(dir);
  const int64_t H = c.hidden_size, I = c.intermediate_size, D = c.head_dim, V = c.vocab_size;
  const int64_t qo = int64_t(c.num_attention_heads) * D, kvo = int64_t(c.num_key_value_heads) * D;
  struct Spec {
    std::string name;
    std::vector<int64_t> shape;
    float std, constant;
  };
  std::vector<Spec> specs = {{"model.embed_tokens.weight", {V, H}, 0.02f, 0}, {"model.norm.weight", {H}, 0, 1}};
  if (!c.tie_word_embeddings) specs.push_back({"lm_head.weight", {V, H}, 0.02f, 0});
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    std::vector<Spec> layer = {
        {"input_layernorm.weight", {H}, 0, 1},           {"post_attention_layernorm.weight", {H}, 0, 1},
        {"self_attn.q_proj.weight", {qo, H}, 0.02f, 0},  {"self_attn.k_proj.weight", {kvo, H}, 0.02f, 0},
        {"self_attn.v_proj.weight", {kvo, H}, 0.02f, 0}, {"self_attn.o_proj.weight", {H, qo}, 0.02f, 0},
        {"mlp.gate_proj.weight", {I, H}, 0.02f, 0},      {"mlp.up_proj.weight", {I, H}, 0.02f, 0},
        {"mlp.down_proj.weight", {H, I}, 0.02f, 0}};
    if (c.attention_bias)
      for (auto [name, n] : {std::pair{"q", qo}, {"k", kvo}, {"v", kvo}})
        layer.push_back({std::string("self_attn.") + name + "_proj.bias", {n}, 0, 0});
    if (c.o_bias()) layer.push_back({"self_attn.o_proj.bias", {H}, 0, 0});
    if (c.qk_norm()) {
      layer.push_back({"self_attn.q_norm.weight", {D}, 0, 1});
      layer.push_back({"self_attn.k_norm.weight", {D}, 0, 1});
    }
    for (Spec& s : layer) {
      s.name = p + s.name;
      specs.push_back(s);
    }
  }
  // Values per tensor in the target dtype; the buffers must outlive the write.
  std::vector<std::unique_ptr<std::byte[]>> values;
  std::vector<SafetensorsEntry> entries;
  for (size_t i = 0; i < specs.size(); ++i) {
    int64_t n = 1;
    for (int64_t d : specs[i].shape) n *= d;
    values.push_back(random_values(dtype, n, specs[i].std, specs[i].constant, rng::hash(seed, i)));
    entries.push_back({specs[i].name, dtype, specs[i].shape, values.back().get()});
  }
  Qwen2Config out = c;
  out.dtype = dtype == DType::BF16 ? "bfloat16" : "float32";
  write_file_atomic(dir / "config.json", out.to_json());
  write_model_safetensors(dir, entries, {{"format", "pt"}}, size_t(2) << 30);
}

}  // namespace qsft
