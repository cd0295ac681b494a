#include "engine/io/model_config.h"

#include <simdjson.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string_view>
#include <tuple>
#include <utility>

#include "engine/base/error.h"
#include "engine/io/json_writer.h"

namespace qsft {
namespace {

constexpr const char* kSupported = "supported: Qwen2ForCausalLM (model_type qwen2); Qwen3 is planned";

// Size limits far beyond any model (Qwen2-72B: hidden 8192, intermediate 29568, 80 layers, 64 heads of 128, vocab
// 152064) that keep every byte count of the weights and the memory plan well inside 64 bits: a layer's weights
// are at most ~8 x 2^40 elements, all layers ~2^55. Token ids and positions are int32; ids < 2^24 (tokenizer).
constexpr int64_t kMaxHidden = int64_t(1) << 17;
constexpr int64_t kMaxWidth = int64_t(1) << 20;  // intermediate_size, heads x head_dim
constexpr int64_t kMaxLayers = int64_t(1) << 12;
constexpr int64_t kMaxHeads = int64_t(1) << 12;
constexpr int64_t kMaxVocab = int64_t(1) << 24;
constexpr int64_t kMaxPositions = INT32_MAX;

const char* type_name(simdjson::dom::element_type t) {
  using T = simdjson::dom::element_type;
  switch (t) {
    case T::ARRAY: return "a list";
    case T::OBJECT: return "an object";
    case T::INT64: case T::UINT64: return "an integer";
    case T::DOUBLE: return "a fractional number";
    case T::STRING: return "a string";
    case T::BOOL: return "a boolean";
    case T::NULL_VALUE: return "null";
  }
  return "?";
}

// Typed lookups in one JSON object of config.json; errors name the file and the key ("rope_parameters.rope_type").
class Keys {
 public:
  Keys(const std::string& path, simdjson::dom::object obj, std::string prefix = "")
      : path_(path), obj_(obj), prefix_(std::move(prefix)) {}

  // The value, or nullopt when the key is absent or null (transformers treats both as "use the default").
  std::optional<simdjson::dom::element> get(const char* key) const {
    simdjson::dom::element e;
    if (obj_[key].get(e) || e.is_null()) return std::nullopt;
    return e;
  }
  int64_t integer(const char* key) const {
    auto v = opt_integer(key);
    if (!v) throw error("missing key \"" + name(key) + "\"");
    return *v;
  }
  std::optional<int64_t> opt_integer(const char* key) const {
    auto e = get(key);
    if (!e) return std::nullopt;
    return as_integer(key, *e);
  }
  int64_t as_integer(const char* key, simdjson::dom::element e) const {
    int64_t v;
    if (e.get_int64().get(v)) wrong_type(key, "an integer", e);
    return v;
  }
  double number(const char* key, double fallback) const {
    auto e = get(key);
    double v = fallback;
    if (e && e->get_double().get(v)) wrong_type(key, "a number", *e);  // simdjson converts integers too
    return v;
  }
  bool boolean(const char* key, bool fallback) const {
    auto e = get(key);
    bool v = fallback;
    if (e && e->get_bool().get(v)) wrong_type(key, "a boolean", *e);
    return v;
  }
  std::string string(const char* key, const std::string& fallback) const {
    auto e = get(key);
    std::string_view v = fallback;
    if (e && e->get_string().get(v)) wrong_type(key, "a string", *e);
    return std::string(v);
  }
  std::vector<std::string> strings(const char* key) const {  // a list of strings; empty when absent
    std::vector<std::string> out;
    auto e = get(key);
    if (!e) return out;
    simdjson::dom::array arr;
    if (e->get_array().get(arr)) wrong_type(key, "a list of strings", *e);
    for (simdjson::dom::element x : arr) {
      std::string_view s;
      if (x.get_string().get(s)) wrong_type(key, "a list of strings", *e);
      out.emplace_back(s);
    }
    return out;
  }
  std::optional<Keys> object(const char* key) const {
    auto e = get(key);
    if (!e) return std::nullopt;
    simdjson::dom::object o;
    if (e->get_object().get(o)) wrong_type(key, "an object", *e);
    return Keys(path_, o, name(key) + ".");
  }

  InputError error(const std::string& what) const { return input_error(path_, what); }
  [[noreturn]] void wrong_type(const char* key, const char* expected, simdjson::dom::element got) const {
    throw error("key \"" + name(key) + "\" must be " + expected + ", got " + type_name(got.type()));
  }

 private:
  std::string name(const char* key) const { return prefix_ + key; }
  std::string path_;
  simdjson::dom::object obj_;
  std::string prefix_;
};

void check_architecture(const Keys& k) {
  auto archs = k.strings("architectures");
  if (!archs.empty() && std::find(archs.begin(), archs.end(), "Qwen2ForCausalLM") == archs.end()) {
    std::string got;
    for (auto& a : archs) got += (got.empty() ? "" : ", ") + a;
    throw k.error("architectures [" + got + "] are not supported (" + kSupported + ")");
  }
  std::string model_type = k.string("model_type", "");
  if (model_type.empty()) throw k.error("missing key \"model_type\"");
  if (model_type != "qwen2")
    throw k.error("model_type \"" + model_type + "\" is not supported (" + kSupported + ")");
}

// RoPE must be the plain kind: v5 rope_parameters {"rope_theta", "rope_type": "default"}, v4 rope_theta at the top
// level and rope_scaling null (or of type "default").
double read_rope_theta(const Keys& k) {
  double theta = k.number("rope_theta", 10000.0);
  if (auto scaling = k.object("rope_scaling")) {
    std::string type = scaling->string("rope_type", scaling->string("type", "default"));
    if (type != "default")
      throw k.error("rope_scaling type \"" + type + "\" is not supported (only plain RoPE, rope_type default)");
  }
  if (auto params = k.object("rope_parameters")) {
    std::string type = params->string("rope_type", "default");
    if (type != "default")
      throw k.error("rope_parameters.rope_type \"" + type + "\" is not supported (only \"default\")");
    theta = params->number("rope_theta", theta);
  }
  return theta;
}

void check_attention(const Keys& k) {
  std::string act = k.string("hidden_act", "silu");
  if (act != "silu") throw k.error("hidden_act \"" + act + "\" is not supported (only \"silu\")");
  double dropout = k.number("attention_dropout", 0.0);
  if (dropout != 0.0)
    throw k.error("attention_dropout " + std::to_string(dropout) + " is not supported (must be 0)");
  if (k.boolean("use_sliding_window", false))
    throw k.error("use_sliding_window true: sliding-window attention is not supported");
  for (auto& t : k.strings("layer_types"))
    if (t != "full_attention")
      throw k.error("layer_types contains \"" + t + "\": only full_attention is supported");
}

}  // namespace

Qwen2Config Qwen2Config::parse(const std::string& json, const std::string& path) {
  simdjson::dom::parser parser;
  simdjson::dom::object root;
  if (auto err = parser.parse(simdjson::padded_string(json)).get_object().get(root))
    throw input_error(path, std::string("not a JSON object: ") + simdjson::error_message(err));
  Keys k(path, root);
  check_architecture(k);
  check_attention(k);

  Qwen2Config c;
  c.hidden_size = k.integer("hidden_size");
  c.intermediate_size = k.integer("intermediate_size");
  c.num_hidden_layers = k.integer("num_hidden_layers");
  c.num_attention_heads = k.integer("num_attention_heads");
  c.num_key_value_heads = k.integer("num_key_value_heads");
  c.vocab_size = k.integer("vocab_size");
  c.max_position_embeddings = k.opt_integer("max_position_embeddings").value_or(c.max_position_embeddings);
  c.rope_theta = read_rope_theta(k);
  c.rms_norm_eps = k.number("rms_norm_eps", c.rms_norm_eps);
  c.tie_word_embeddings = k.boolean("tie_word_embeddings", c.tie_word_embeddings);
  c.bos_token_id = k.opt_integer("bos_token_id");
  if (auto eos = k.get("eos_token_id")) {
    simdjson::dom::array list;
    if (eos->get_array().get(list) == simdjson::SUCCESS) {
      for (simdjson::dom::element id : list) c.eos_token_ids.push_back(k.as_integer("eos_token_id", id));
    } else {
      c.eos_token_ids.push_back(k.as_integer("eos_token_id", *eos));
    }
  }
  c.dtype = k.string("dtype", k.string("torch_dtype", ""));

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
                  std::to_string(c.head_dim) + ", more than any model has (at most " + std::to_string(kMaxWidth) +
                  ")");
  if (!(c.rope_theta > 0) || !(c.rms_norm_eps > 0))
    throw k.error("rope_theta and rms_norm_eps must be positive");
  return c;
}

Qwen2Config Qwen2Config::load(const std::filesystem::path& model_dir) {
  std::filesystem::path path = model_dir / "config.json";
  simdjson::padded_string text;
  if (auto err = simdjson::padded_string::load(path.string()).get(text))
    throw input_error(path.string(), std::string("cannot read: ") + simdjson::error_message(err));
  return parse(std::string(text.data(), text.size()), path.string());
}

std::string Qwen2Config::to_json() const {
  Json j = Json::object();
  j.set("architectures", Json::array({"Qwen2ForCausalLM"}));
  j.set("model_type", "qwen2");
  j.set("hidden_size", hidden_size);
  j.set("intermediate_size", intermediate_size);
  j.set("num_hidden_layers", num_hidden_layers);
  j.set("num_attention_heads", num_attention_heads);
  j.set("num_key_value_heads", num_key_value_heads);
  if (head_dim != hidden_size / num_attention_heads) j.set("head_dim", head_dim);  // older transformers lack it
  j.set("vocab_size", vocab_size);
  j.set("max_position_embeddings", max_position_embeddings);
  j.set("rope_theta", rope_theta);  // v4
  j.set("rope_parameters", Json::object().set("rope_theta", rope_theta).set("rope_type", "default"));  // v5
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
