// load_generation_config (engine/generate/sampling.h): generation_config.json as transformers reads it.
#include <filesystem>
#include <type_traits>

#include "engine/base/error.h"
#include "engine/base/json_reader.h"
#include "engine/generate/sampling.h"

namespace qsft {

SamplingConfig load_generation_config(const std::string& model_dir) {
  SamplingConfig c;
  const std::string path = (std::filesystem::path(model_dir) / "generation_config.json").string();
  if (!std::filesystem::exists(path)) return c;
  const json::Document doc(path, json::read_text_file(path));
  const json::Object k = doc.object();  // absent or null keys keep their defaults, as transformers reads them
  auto number = [&](const char* key, auto& out) { out = std::remove_reference_t<decltype(out)>(k.number(key, out)); };
  c.do_sample = k.boolean("do_sample", c.do_sample);
  number("temperature", c.temperature);
  number("top_k", c.top_k);
  number("top_p", c.top_p);
  number("min_p", c.min_p);
  number("repetition_penalty", c.repetition_penalty);
  number("max_new_tokens", c.max_new_tokens);
  for (int64_t id : k.integers("eos_token_id")) c.eos_ids.push_back(int32_t(id));
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
