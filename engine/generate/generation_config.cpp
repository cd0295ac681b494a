// load_generation_config (engine/generate/sampling.h): generation_config.json as transformers reads it.
#include <simdjson.h>

#include <filesystem>

#include "engine/base/error.h"
#include "engine/generate/sampling.h"

namespace qsft {
namespace {

// Typed optional keys of generation_config.json; null counts as absent (transformers: "use the default").
struct GenKeys {
  std::string path;
  simdjson::dom::object obj;

  bool get(const char* key, simdjson::dom::element& e) const { return !obj[key].get(e) && !e.is_null(); }
  [[noreturn]] void wrong(const char* key, const char* expected) const {
    throw input_error(path, std::string("key \"") + key + "\" must be " + expected);
  }
  template <class T>
  void number(const char* key, T& out) const {
    simdjson::dom::element e;
    double v;
    if (!get(key, e)) return;
    if (e.get_double().get(v)) wrong(key, "a number");
    out = T(v);
  }
  void boolean(const char* key, bool& out) const {
    simdjson::dom::element e;
    if (get(key, e) && e.get_bool().get(out)) wrong(key, "true or false");
  }
  void ids(const char* key, std::vector<int32_t>& out) const {  // one id or a list of ids
    simdjson::dom::element e;
    if (!get(key, e)) return;
    int64_t id;
    simdjson::dom::array arr;
    if (!e.get_int64().get(id)) {
      out.push_back(int32_t(id));
    } else if (!e.get_array().get(arr)) {
      for (simdjson::dom::element x : arr) {
        if (x.get_int64().get(id)) wrong(key, "a token id or a list of token ids");
        out.push_back(int32_t(id));
      }
    } else {
      wrong(key, "a token id or a list of token ids");
    }
  }
};

}  // namespace

SamplingConfig load_generation_config(const std::string& model_dir) {
  SamplingConfig c;
  const std::string path = (std::filesystem::path(model_dir) / "generation_config.json").string();
  if (!std::filesystem::exists(path)) return c;
  simdjson::dom::parser parser;
  simdjson::padded_string text;
  if (simdjson::padded_string::load(path).get(text)) throw input_error(path, "cannot be read");
  simdjson::dom::object obj;
  if (parser.parse(text).get_object().get(obj)) throw input_error(path, "is not a JSON object");
  const GenKeys k{path, obj};
  k.boolean("do_sample", c.do_sample);
  k.number("temperature", c.temperature);
  k.number("top_k", c.top_k);
  k.number("top_p", c.top_p);
  k.number("min_p", c.min_p);
  k.number("repetition_penalty", c.repetition_penalty);
  k.number("max_new_tokens", c.max_new_tokens);
  k.ids("eos_token_id", c.eos_ids);
  check_sampling(c, path);
  return c;
}

void check_sampling(const SamplingConfig& c, const std::string& where) {
  auto bad = [&](const std::string& what) { return input_error(where, what); };
  if (!(c.temperature > 0)) throw bad("temperature must be > 0 (for greedy decoding set do_sample false)");
  if (c.top_k < 0) throw bad("top_k must be >= 0 (0 = off)");
  if (!(c.top_p > 0 && c.top_p <= 1)) throw bad("top_p must be in (0, 1]");
  if (!(c.min_p >= 0 && c.min_p <= 1)) throw bad("min_p must be in [0, 1]");
  if (!(c.repetition_penalty > 0)) throw bad("repetition_penalty must be > 0");
  if (c.max_new_tokens < 1) throw bad("max_new_tokens must be >= 1");
}

}  // namespace qsft
