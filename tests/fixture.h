// The Hugging Face golden fixtures under tests/data/fixtures/<case>/ (made by tools/make_fixtures.py):
// model/ (config + safetensors), adapter/ (the initial PEFT adapter), golden.json (batch, loss, step losses,
// LoRA and AdamW settings), golden.safetensors (logits, grad.<peft key>, after5.<peft key>).
#pragma once
#include <simdjson.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/packed_batch.h"
#include "engine/io/model_config.h"
#include "engine/io/peft_adapter.h"
#include "engine/io/safetensors.h"
#include "engine/model/qwen2.h"
#include "engine/train/adamw.h"
#include "test_util.h"

namespace qsft::test {

struct Fixture {
  std::filesystem::path dir;
  Qwen2Config config;
  LoraConfig lora;
  AdamWSettings adamw;
  PackedBatch batch;
  double loss = 0;
  std::vector<double> step_losses;
  std::vector<float> lora_init;  // the adapter's parameters in LoraLayout order
};

inline std::vector<int32_t> json_ints(simdjson::dom::element e) {
  std::vector<int32_t> v;
  for (int64_t x : e.get_array()) v.push_back(int32_t(x));
  return v;
}

inline Fixture load_fixture(const std::string& name) {
  Fixture f;
  f.dir = repo_testdata() / "fixtures" / name;
  f.config = Qwen2Config::load((f.dir / "model").string());
  simdjson::dom::parser parser;
  simdjson::dom::element g = parser.load((f.dir / "golden.json").string());
  std::vector<int32_t> ids = json_ints(g["input_ids"]), targets = json_ints(g["targets"]);
  std::vector<int32_t> cu = json_ints(g["cu_seqlens"]);
  for (size_t s = 0; s + 1 < cu.size(); ++s)
    f.batch.append_with_targets(std::span(ids).subspan(size_t(cu[s]), size_t(cu[s + 1] - cu[s])),
                                std::span(targets).subspan(size_t(cu[s]), size_t(cu[s + 1] - cu[s])));
  f.loss = double(g["loss"]);
  for (double x : g["step_losses"].get_array()) f.step_losses.push_back(x);
  simdjson::dom::element a = g["adamw"];
  f.adamw = {double(a["lr"]), double(a["beta1"]), double(a["beta2"]), double(a["eps"]), double(a["weight_decay"])};
  f.lora = read_peft_config((f.dir / "adapter").string());
  f.lora_init = read_peft_weights((f.dir / "adapter").string(), LoraLayout(f.config, f.lora));
  return f;
}

inline std::unique_ptr<Qwen2Model> make_model(Ops& ops, const Fixture& f, int64_t max_tokens, bool recompute) {
  ModelOptions opts;
  opts.max_tokens = max_tokens;
  opts.recompute = recompute;
  auto m = std::make_unique<Qwen2Model>(ops, f.config, f.lora, opts);
  m->load_weights((f.dir / "model").string());
  m->set_lora_params(f.lora_init);
  return m;
}

// ||a - b|| / ||b||
inline double rel_l2(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}
// max |a - b| / max |b|
inline double rel_max(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num = std::max(num, std::fabs(double(a[i]) - b[i]));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return num / den;
}

}  // namespace qsft::test

#define QSFT_REQUIRE_FIXTURE(name) QSFT_REQUIRE_PATH(qsft::test::repo_testdata() / "fixtures" / (name) / "golden.json")
