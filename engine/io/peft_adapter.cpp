#include "engine/io/peft_adapter.h"

#include <algorithm>
#include <cmath>

#include "engine/base/error.h"
#include "engine/base/json_reader.h"
#include "engine/base/json_writer.h"
#include "engine/io/safetensors.h"

namespace qsft {

namespace fs = std::filesystem;

LoraConfig read_peft_config(const fs::path& dir) {
  const std::string path = (dir / "adapter_config.json").string();
  if (!fs::exists(path)) throw input_error(path, "not found (a PEFT adapter directory has adapter_config.json)");
  const json::Document doc(path, json::read_text_file(path));
  const json::Object j = doc.object();
  auto is_set = [&](const char* k) {  // present, and neither null, false, "" nor an empty container
    auto e = j.get(k);
    if (!e) return false;
    if (e->is_bool()) return bool(e->get_bool());
    if (e->is_string()) return !std::string_view(e->get_string()).empty() && std::string_view(*e) != "none";
    if (e->is_array()) return simdjson::dom::array(*e).size() > 0;
    if (e->is_object()) return simdjson::dom::object(*e).size() > 0;
    return true;
  };
  if (j.reader("peft_type").string(j.at("peft_type")) != "LORA")
    throw j.error("peft_type must be \"LORA\" (only LoRA adapters are supported)");
  // Features that change the math: loading such an adapter as plain LoRA would give wrong logits.
  for (const char* k :
       {"use_dora", "modules_to_save", "rank_pattern", "alpha_pattern", "layers_to_transform", "bias", "lora_bias",
        "exclude_modules", "target_parameters", "trainable_token_indices", "layer_replication"})
    if (is_set(k)) throw j.error(std::string("\"") + k + "\" is not supported");
  LoraConfig c;
  c.r = int(j.reader("r").count(j.at("r"), 1, INT32_MAX));
  c.alpha = float(j.reader("lora_alpha").number(j.at("lora_alpha")));
  c.dropout = float(j.number("lora_dropout", 0.0));
  c.use_rslora = j.boolean("use_rslora", false);
  std::vector<std::string> targets;
  const json::element tm = j.at("target_modules");
  if (tm.is_string()) {
    targets.push_back(j.reader("target_modules").string(tm));
    if (targets[0] != "all-linear")
      throw j.error(
          "target_modules is a regular expression, which is not supported (give a list of module names "
          "or \"all-linear\")");
  } else {
    targets = j.reader("target_modules").strings(tm);
  }
  c.set_targets(targets, path);
  return c;
}

std::vector<float> read_peft_weights(const fs::path& dir, const LoraLayout& layout) {
  SafetensorsFile f = SafetensorsFile::open(dir / "adapter_model.safetensors");
  std::vector<float> p(size_t(layout.num_params()));
  const int64_t r = layout.config().r;
  for (const LoraSlot& s : layout.slots())
    for (char which : {'A', 'B'}) {
      const std::string key = LoraLayout::peft_key(s, which);
      const TensorInfo* t = f.find(key);
      if (!t) throw input_error(f.path(), "missing tensor " + key);
      const std::vector<int64_t> want = which == 'A' ? std::vector<int64_t>{r, s.in} : std::vector<int64_t>{s.out, r};
      if (t->shape != want) {
        TensorInfo expected = *t;
        expected.shape = want;
        throw input_error(f.path(),
                          "tensor " + key + ": shape " + t->shape_str() + " expected " + expected.shape_str());
      }
      float* values = p.data() + (which == 'A' ? s.a_offset : s.b_offset);
      copy_to_f32(*t, values);
      if (!std::all_of(values, values + t->numel(), [](float x) { return std::isfinite(x); }))
        throw input_error(f.path(), "tensor " + key +
                                        " holds non-finite values (NaN or infinity): the run that "
                                        "wrote it diverged");
    }
  return p;
}

void write_peft_adapter(const fs::path& dir, const LoraLayout& layout, const std::vector<float>& params,
                        const std::string& base_model) {
  QSFT_CHECK(int64_t(params.size()) == layout.num_params(), "LoRA parameter count");
  fs::create_directories(dir);
  const LoraConfig& c = layout.config();
  std::vector<SafetensorsEntry> entries;
  const int64_t r = c.r;
  for (const LoraSlot& s : layout.slots()) {
    entries.push_back({LoraLayout::peft_key(s, 'A'), DType::F32, {r, s.in}, params.data() + s.a_offset});
    entries.push_back({LoraLayout::peft_key(s, 'B'), DType::F32, {s.out, r}, params.data() + s.b_offset});
  }
  write_safetensors(dir / "adapter_model.safetensors", entries, {{"format", "pt"}});

  Json targets = Json::array();
  for (const std::string& t : c.target_names()) targets.push(t);
  Json cfg = Json::object();
  cfg.set("base_model_name_or_path", base_model)
      .set("bias", "none")
      .set("fan_in_fan_out", false)
      .set("inference_mode", true)
      .set("init_lora_weights", true)
      .set("layers_pattern", nullptr)
      .set("layers_to_transform", nullptr)
      .set("lora_alpha", c.alpha == float(int64_t(c.alpha)) ? Json(int64_t(c.alpha)) : Json(c.alpha))
      .set("lora_dropout", c.dropout)
      .set("modules_to_save", nullptr)
      .set("peft_type", "LORA")
      .set("r", c.r)
      .set("rank_pattern", Json::object())
      .set("alpha_pattern", Json::object())
      .set("revision", nullptr)
      .set("target_modules", targets)
      .set("task_type", "CAUSAL_LM")
      .set("use_dora", false)
      .set("use_rslora", c.use_rslora);
  write_file_atomic(dir / "adapter_config.json", cfg.dump({2, true}));
}

}  // namespace qsft
