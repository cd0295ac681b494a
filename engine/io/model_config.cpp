#include "engine/io/model_config.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string_view>
#include <tuple>
#include <utility>

#include "engine/base/error.h"
#include "engine/base/json_reader.h"
#include "engine/base/json_writer.h"
#include "engine/io/bnb_checkpoint.h"

namespace qsft {
namespace {

constexpr const char* kSupported =
    "supported: Qwen2ForCausalLM (model_type qwen2), Qwen3ForCausalLM (model_type qwen3)";

// Size limits far beyond any model (Qwen2-72B: hidden 8192, intermediate 29568, 80 layers, 64 heads of 128, vocab
// 152064) that keep every byte count of the weights and the memory plan well inside 64 bits: a layer's weights
// are at most ~8 x 2^40 elements, all layers ~2^55. Token ids and positions are int32; ids < 2^24 (tokenizer).
constexpr int64_t kMaxHidden = int64_t(1) << 17;
constexpr int64_t kMaxWidth = int64_t(1) << 20;  // intermediate_size, heads x head_dim
constexpr int64_t kMaxLayers = int64_t(1) << 12;
constexpr int64_t kMaxHeads = int64_t(1) << 12;
constexpr int64_t kMaxVocab = int64_t(1) << 24;
constexpr int64_t kMaxPositions = INT32_MAX;

// The architecture from "architectures" (when present) and "model_type", which must agree.
ModelArch read_architecture(const json::Object& k) {
  std::string model_type = k.string("model_type", "");
  if (model_type.empty()) throw k.error("missing key \"model_type\"");
  if (model_type != "qwen2" && model_type != "qwen3")
    throw k.error("model_type \"" + model_type + "\" is not supported (" + kSupported + ")");
  const ModelArch arch = model_type == "qwen2" ? ModelArch::qwen2 : ModelArch::qwen3;
  const char* want = arch == ModelArch::qwen2 ? "Qwen2ForCausalLM" : "Qwen3ForCausalLM";
  auto archs = k.strings("architectures");
  if (!archs.empty() && std::find(archs.begin(), archs.end(), want) == archs.end()) {
    std::string got;
    for (auto& a : archs) got += (got.empty() ? "" : ", ") + a;
    throw k.error("architectures [" + got + "] are not supported with model_type " + model_type + " (" + kSupported +
                  ")");
  }
  return arch;
}

// The parameters of a scaled RoPE type (r: the rope_scaling or rope_parameters object), as transformers'
// _validate_*_rope_parameters require them and the _compute_*_parameters read them.
void read_rope_scaling(const json::Object& k, const json::Object& r, int64_t max_position_embeddings, RopeScaling& s) {
  auto required = [&](const char* key) {
    if (!r.get(key)) throw k.error("missing key \"" + r.name(key) + "\" (required by RoPE type " + s.type + ")");
    return r.number(key, 0.0);
  };
  auto optional = [&](const char* key) -> std::optional<double> {
    if (!r.get(key)) return std::nullopt;
    return r.number(key, 0.0);
  };
  s.factor = required("factor");
  if (!(s.factor > 0) || !std::isfinite(s.factor))
    throw k.error("key \"" + r.name("factor") + "\" must be a positive number");
  if (s.type == "linear" || s.type == "dynamic") return;
  // A top-level original_max_position_embeddings has priority (Phi3's spelling), then the parameters' own, then
  // max_position_embeddings.
  s.original_max_position_embeddings =
      k.opt_integer("original_max_position_embeddings")
          .value_or(r.opt_integer("original_max_position_embeddings").value_or(max_position_embeddings));
  if (s.original_max_position_embeddings <= 0)
    throw k.error("key \"" + r.name("original_max_position_embeddings") + "\" must be positive");
  if (s.type == "yarn") {
    s.attention_factor = optional("attention_factor");
    s.beta_fast = optional("beta_fast");
    s.beta_slow = optional("beta_slow");
    s.mscale = optional("mscale");
    s.mscale_all_dim = optional("mscale_all_dim");
    if (r.get("truncate")) s.truncate = r.boolean("truncate", true);
    if (r.is_null("truncate")) s.truncate = false;  // transformers: `get("truncate", True)` is None, falsy
    return;
  }
  s.low_freq_factor = required("low_freq_factor");
  s.high_freq_factor = required("high_freq_factor");
  if (!(s.high_freq_factor > s.low_freq_factor) || !(s.low_freq_factor > 0))
    throw k.error("keys \"" + r.name("low_freq_factor") + "\" and \"" + r.name("high_freq_factor") +
                  "\" must satisfy 0 < low_freq_factor < high_freq_factor");
}

// RoPE: theta and scaling as transformers v5 standardises them (modeling_rope_utils convert_rope_params_to_dict,
// standardize_rope_params): the parameters are rope_scaling when it is a non-empty object (v4 spelling), otherwise
// rope_parameters (v5); in them "rope_type" wins over "type", "rope_theta" over the top-level rope_theta.
void read_rope(const json::Object& k, Qwen2Config& c) {
  auto scaling = k.object("rope_scaling");
  if (scaling && scaling->empty()) scaling.reset();
  const std::optional<json::Object> p = scaling ? scaling : k.object("rope_parameters");
  c.rope_theta = k.number("rope_theta", 10000.0);
  double partial = k.number("partial_rotary_factor", 1.0);
  if (p) partial = p->number("partial_rotary_factor", partial);
  if (partial != 1.0)
    throw k.error("partial_rotary_factor " + std::to_string(partial) + " is not supported (RoPE over the whole head)");
  if (!p) return;
  c.rope_theta = p->number("rope_theta", c.rope_theta);
  const char* type_key = p->get("rope_type") ? "rope_type" : "type";
  c.rope_scaling.type = p->string(type_key, "default");
  const std::string& type = c.rope_scaling.type;
  if (type == "default") return;
  if (type != "linear" && type != "dynamic" && type != "yarn" && type != "llama3")
    throw k.error("key \"" + p->name(type_key) + "\": RoPE type \"" + type +
                  "\" is not supported (supported: default, linear, dynamic, yarn, llama3)");
  read_rope_scaling(k, *p, c.max_position_embeddings, c.rope_scaling);
}

void check_attention(const json::Object& k) {
  std::string act = k.string("hidden_act", "silu");
  if (act != "silu") throw k.error("hidden_act \"" + act + "\" is not supported (only \"silu\")");
  double dropout = k.number("attention_dropout", 0.0);
  if (dropout != 0.0) throw k.error("attention_dropout " + std::to_string(dropout) + " is not supported (must be 0)");
  if (k.boolean("use_sliding_window", false))
    throw k.error("use_sliding_window true: sliding-window attention is not supported");
  for (auto& t : k.strings("layer_types"))
    if (t != "full_attention") throw k.error("layer_types contains \"" + t + "\": only full_attention is supported");
}

// The scaling parameters as read (rope_type and the keys its type uses): v4 rope_scaling adds "type", v5
// rope_parameters adds rope_theta.
Json rope_scaling_json(const RopeScaling& s) {
  Json j = Json::object().set("rope_type", s.type);
  if (s.type == "default") return j;
  j.set("factor", s.factor);
  if (s.type == "linear" || s.type == "dynamic") return j;
  j.set("original_max_position_embeddings", s.original_max_position_embeddings);
  for (auto [key, v] : {std::pair{"attention_factor", s.attention_factor},
                        {"beta_fast", s.beta_fast},
                        {"beta_slow", s.beta_slow},
                        {"mscale", s.mscale},
                        {"mscale_all_dim", s.mscale_all_dim}})
    if (v) j.set(key, *v);
  if (s.truncate) j.set("truncate", *s.truncate);
  if (s.type == "llama3") j.set("low_freq_factor", s.low_freq_factor).set("high_freq_factor", s.high_freq_factor);
  return j;
}

}  // namespace

Qwen2Config Qwen2Config::parse(const std::string& json, const std::string& path) {
  const json::Document doc(path, json);
  const json::Object k = doc.object();
  const ModelArch arch = read_architecture(k);
  check_attention(k);

  Qwen2Config c;
  c.arch = arch;
  // transformers: Qwen2's q/k/v always have a bias; Qwen3's projections follow attention_bias (default false).
  c.attention_bias = arch == ModelArch::qwen2 ? true : k.boolean("attention_bias", false);
  c.hidden_size = k.integer("hidden_size");
  c.intermediate_size = k.integer("intermediate_size");
  c.num_hidden_layers = k.integer("num_hidden_layers");
  c.num_attention_heads = k.integer("num_attention_heads");
  c.num_key_value_heads = k.integer("num_key_value_heads");
  c.vocab_size = k.integer("vocab_size");
  c.max_position_embeddings = k.opt_integer("max_position_embeddings").value_or(c.max_position_embeddings);
  read_rope(k, c);
  c.rms_norm_eps = k.number("rms_norm_eps", c.rms_norm_eps);
  c.tie_word_embeddings = k.boolean("tie_word_embeddings", c.tie_word_embeddings);
  c.bos_token_id = k.opt_integer("bos_token_id");
  c.eos_token_ids = k.integers("eos_token_id");
  c.dtype = k.string("dtype", k.string("torch_dtype", ""));
  read_saved_quantization(k, path, c.saved_4bit);

  for (auto [key, v, most] : {std::tuple{"hidden_size", c.hidden_size, kMaxHidden},
                              {"intermediate_size", c.intermediate_size, kMaxWidth},
                              {"num_hidden_layers", c.num_hidden_layers, kMaxLayers},
                              {"num_attention_heads", c.num_attention_heads, kMaxHeads},
                              {"num_key_value_heads", c.num_key_value_heads, kMaxHeads},
                              {"vocab_size", c.vocab_size, kMaxVocab},
                              {"max_position_embeddings", c.max_position_embeddings, kMaxPositions}}) {
    if (v <= 0) throw k.error(std::string("key \"") + key + "\" must be positive, got " + std::to_string(v));
    if (v > most)
      throw k.error(std::string("key \"") + key + "\" is " + std::to_string(v) + ", more than any model has (at most " +
                    std::to_string(most) + ")");
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    throw k.error("num_attention_heads " + std::to_string(c.num_attention_heads) +
                  " is not a multiple of num_key_value_heads " + std::to_string(c.num_key_value_heads));
  if (auto hd = k.opt_integer("head_dim")) {
    c.head_dim = *hd;
  } else if (c.hidden_size % c.num_attention_heads != 0) {
    throw k.error("hidden_size " + std::to_string(c.hidden_size) + " is not a multiple of num_attention_heads " +
                  std::to_string(c.num_attention_heads) + " and there is no \"head_dim\"");
  } else {
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim <= 0 || c.head_dim % 2 != 0)
    throw k.error("head_dim " + std::to_string(c.head_dim) + " must be positive and even (RoPE rotates halves)");
  if (c.head_dim > kMaxWidth / c.num_attention_heads)
    throw k.error("num_attention_heads x head_dim is " + std::to_string(c.num_attention_heads) + " x " +
                  std::to_string(c.head_dim) + ", more than any model has (at most " + std::to_string(kMaxWidth) + ")");
  if (!(c.rope_theta > 0) || !(c.rms_norm_eps > 0)) throw k.error("rope_theta and rms_norm_eps must be positive");
  return c;
}

void Qwen2Config::check_layers(const std::vector<std::string>& tensor_names, const std::string& path) const {
  const std::string prefix = "model.layers.";
  for (const std::string& name : tensor_names) {
    if (name.rfind(prefix, 0) != 0) continue;
    const size_t dot = name.find('.', prefix.size());
    const std::string n = name.substr(prefix.size(), dot == std::string::npos ? dot : dot - prefix.size());
    if (n.empty() || n.size() > 9 || n.find_first_not_of("0123456789") != std::string::npos) continue;
    if (std::stoll(n) >= num_hidden_layers)
      throw input_error(path, "num_hidden_layers is " + std::to_string(num_hidden_layers) + " but the weights hold " +
                                  name + " (the model has more layers than config.json says)");
  }
}

Qwen2Config Qwen2Config::load(const std::filesystem::path& model_dir) {
  std::filesystem::path path = model_dir / "config.json";
  return parse(json::read_text_file(path.string()), path.string());
}

std::string Qwen2Config::to_json() const {
  Json j = Json::object();
  const bool qwen3 = arch == ModelArch::qwen3;
  j.set("architectures", Json::array({qwen3 ? "Qwen3ForCausalLM" : "Qwen2ForCausalLM"}));
  j.set("model_type", qwen3 ? "qwen3" : "qwen2");
  if (qwen3) j.set("attention_bias", attention_bias);
  j.set("hidden_size", hidden_size);
  j.set("intermediate_size", intermediate_size);
  j.set("num_hidden_layers", num_hidden_layers);
  j.set("num_attention_heads", num_attention_heads);
  j.set("num_key_value_heads", num_key_value_heads);
  if (qwen3 || head_dim != hidden_size / num_attention_heads) j.set("head_dim", head_dim);  // old v4 Qwen2 lacks it
  j.set("vocab_size", vocab_size);
  j.set("max_position_embeddings", max_position_embeddings);
  j.set("rope_theta", rope_theta);       // v4
  if (rope_scaling.type != "default") {  // v4
    Json v4 = rope_scaling_json(rope_scaling);
    j.set("rope_scaling", std::move(v4.set("type", rope_scaling.type)));
  }
  Json v5 = rope_scaling_json(rope_scaling);
  j.set("rope_parameters", std::move(v5.set("rope_theta", rope_theta)));  // v5
  j.set("rms_norm_eps", rms_norm_eps);
  j.set("tie_word_embeddings", tie_word_embeddings);
  j.set("hidden_act", "silu");
  j.set("attention_dropout", 0.0);
  j.set("use_sliding_window", false);
  j.set("use_cache", true);
  if (bos_token_id) j.set("bos_token_id", *bos_token_id);
  if (eos_token_ids.size() == 1) {
    j.set("eos_token_id", eos_token_ids[0]);
  } else if (!eos_token_ids.empty()) {
    Json list = Json::array();
    for (int64_t id : eos_token_ids) list.push(id);
    j.set("eos_token_id", std::move(list));
  }
  if (!dtype.empty()) {
    j.set("dtype", dtype);        // v5
    j.set("torch_dtype", dtype);  // v4
  }
  return j.dump({.indent = 2, .sort_keys = true}) + "\n";
}

}  // namespace qsft
