// A Linear saved in bitsandbytes' 4-bit form (engine/io/bnb_checkpoint.h), on hand-made safetensors files: its
// codes and scales land where the 4-bit ops read them (the dequantized weight is quant_map[nibble] * absmax, the
// first element in the high nibble, the absmax double-quantized as nested_quant_map[q] * nested_absmax + offset);
// what we do not support (another blocksize, quant type, shape, map, a broken quant_state) is one InputError naming
// the file and the tensor; config.json's quantization_config decides the weights' format.
#include <gtest/gtest.h>

#include <random>

#include "engine/io/bnb_checkpoint.h"
#include "kernels/nf4.h"
#include "ops_test_util.h"
#include "test_util.h"

namespace qsft::test {
namespace {

constexpr int64_t kOut = 4, kIn = 64, kN = kOut * kIn, kBlocks = kN / 64;

// The tensors of one saved Linear "x.weight" (nested: double-quantized), editable before they are written.
struct SavedLinear {
  bool nested;
  std::string state_key = "x.weight.quant_state.bitsandbytes__nf4";
  std::string state;  // the quant_state JSON
  std::vector<uint8_t> codes = std::vector<uint8_t>(kN / 2), qabsmax = std::vector<uint8_t>(kBlocks);
  std::vector<float> absmax = std::vector<float>(kBlocks), absmax2 = {0.0125f};
  std::vector<float> quant_map, nested_map;
  float offset = 0.5f;

  explicit SavedLinear(bool dq) : nested(dq) {
    std::mt19937 rng(3);
    for (uint8_t& c : codes) c = uint8_t(rng());
    for (uint8_t& c : qabsmax) c = uint8_t(rng());
    for (int64_t b = 0; b < kBlocks; ++b) absmax[size_t(b)] = 0.25f + 0.125f * float(b);
    quant_map.assign(cpu::quant4_code(cpu::Quant4Type::nf4), cpu::quant4_code(cpu::Quant4Type::nf4) + 16);
    nested_map.assign(cpu::dynamic_code(), cpu::dynamic_code() + 256);
    state = R"({"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [4, 64])" +
            std::string(dq ? R"(, "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.5})" : "}");
  }

  void write(const std::filesystem::path& dir) const {
    std::vector<SafetensorsEntry> e = {{"x.weight", DType::U8, {kN / 2, 1}, codes.data()},
                                       {"x.weight.quant_map", DType::F32, {16}, quant_map.data()},
                                       {state_key, DType::U8, {int64_t(state.size())}, state.data()}};
    if (nested) {
      e.push_back({"x.weight.absmax", DType::U8, {kBlocks}, qabsmax.data()});
      e.push_back({"x.weight.nested_absmax", DType::F32, {int64_t(absmax2.size())}, absmax2.data()});
      e.push_back({"x.weight.nested_quant_map", DType::F32, {256}, nested_map.data()});
    } else {
      e.push_back({"x.weight.absmax", DType::F32, {kBlocks}, absmax.data()});
    }
    write_safetensors(dir / "model.safetensors", e);
  }

  // The weight as bitsandbytes dequantizes it, written out independently of the kernels.
  std::vector<float> dequantized() const {
    std::vector<float> w(static_cast<size_t>(kN));
    for (int64_t i = 0; i < kN; ++i) {
      const int64_t b = i / 64;
      const float scale = nested ? nested_map[qabsmax[size_t(b)]] * absmax2[0] + offset : absmax[size_t(b)];
      const uint8_t byte = codes[size_t(i / 2)];
      w[size_t(i)] = quant_map[i % 2 == 0 ? byte >> 4 : byte & 15] * scale;
    }
    return w;
  }
};

class BnbCheckpoint : public TempDirTest {
 protected:
  // Loads x.weight from dir_ into a Linear carved as `q`; returns its dequantized weight.
  std::vector<float> load(const WeightQuant& q) {
    Arena measure;
    carve_linear(measure, kOut, kIn, false, DType::F32, q);
    Arena a(*ops_, measure.used());
    LinearWeight W = carve_linear(a, kOut, kIn, false, DType::F32, q);
    const TensorStore store = TensorStore::open_dir(dir_);
    EXPECT_TRUE(load_saved_4bit_part(*ops_, store, "x.weight", W, 0));
    F32 dense({kOut, kIn});
    ops_->dequantize(W, dense.t);
    return dense.values();
  }
  std::string error_of(const SavedLinear& s, const WeightQuant& q = {WeightFormat::nf4, false}) {
    s.write(dir_);
    return input_error_of([&] { load(q); });
  }
  std::unique_ptr<Ops> ops_ = make_cpu_ops();
};

TEST_F(BnbCheckpoint, CodesAndScalesAreTakenAsSaved) {
  for (bool dq : {false, true}) {
    SCOPED_TRACE(dq ? "double-quantized" : "plain");
    const SavedLinear s(dq);
    s.write(dir_);
    EXPECT_EQ(load({WeightFormat::nf4, dq}), s.dequantized());
  }
}

TEST_F(BnbCheckpoint, ADenseTensorIsNotSavedQuantized) {
  const std::vector<float> w(static_cast<size_t>(kN), 0.5f);
  write_safetensors(dir_ / "model.safetensors", {{"x.weight", DType::F32, {kOut, kIn}, w.data()}});
  const TensorStore store = TensorStore::open_dir(dir_);
  Arena a(*ops_, 4096);
  LinearWeight W = carve_linear(a, kOut, kIn, false, DType::F32, {WeightFormat::nf4, false});
  EXPECT_FALSE(load_saved_4bit_part(*ops_, store, "x.weight", W, 0));
}

TEST_F(BnbCheckpoint, WhatWeDoNotSupportIsAClearError) {
  auto expect_error = [&](const SavedLinear& s, const std::string& what, const WeightQuant& q) {
    const std::string e = error_of(s, q);
    EXPECT_NE(e.find((dir_ / "model.safetensors").string()), std::string::npos) << e;
    EXPECT_NE(e.find("x.weight"), std::string::npos) << e;
    EXPECT_NE(e.find(what), std::string::npos) << e;
  };
  const WeightQuant nf4{WeightFormat::nf4, false};
  auto with_state = [](const std::string& from, const std::string& to) {
    SavedLinear s(false);
    s.state.replace(s.state.find(from), from.size(), to);
    return s;
  };
  expect_error(with_state("\"blocksize\": 64", "\"blocksize\": 128"), "blocksize 128 is not supported", nf4);
  expect_error(with_state("\"quant_type\": \"nf4\"", "\"quant_type\": \"int4\""), "does not match", nf4);
  expect_error(with_state("[4, 64]", "[8, 32]"), "shape is not [4, 64]", nf4);
  expect_error(with_state("\"float32\"", "\"int8\""), "dtype \"int8\" is not supported", nf4);
  expect_error(with_state("{", "{{"), "invalid JSON", nf4);
  SavedLinear s(false);
  s.quant_map[3] = 0.5f;
  expect_error(s, "x.weight.quant_map: differs from bitsandbytes' standard table", nf4);
  expect_error(SavedLinear(false), "saved as nf4, but config.json's quantization_config says fp4",
               {WeightFormat::fp4, false});
  expect_error(SavedLinear(true), "saved as nf4 double-quantized", nf4);
  SavedLinear fp4(false);
  fp4.state_key = "x.weight.quant_state.bitsandbytes__fp4";
  expect_error(fp4, "quant_type \"nf4\" does not match", nf4);
}

TEST_F(BnbCheckpoint, ATensorOfAnotherShapeIsNamed) {
  SavedLinear s(true);
  s.absmax2 = {0.0125f, 0.0125f};  // ceil(4 / 256) = 1 nested absmax
  const std::string e = error_of(s, {WeightFormat::nf4, true});
  EXPECT_NE(e.find("tensor x.weight.nested_absmax: shape [2] expected [1]"), std::string::npos) << e;
}

// config.json's quantization_config (as transformers saves a BitsAndBytesConfig) decides the weights' format.
TEST(BnbConfig, QuantizationConfigDecidesTheFormat) {
  const std::string head =
      R"({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
          "num_hidden_layers": 1, "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 100,
          "hidden_act": "silu", "quantization_config": )";
  auto parse = [&](const std::string& q) { return Qwen2Config::parse(head + q + "}", "/m/config.json"); };
  const Qwen2Config c = parse(
      R"({"quant_method": "bitsandbytes", "_load_in_4bit": true, "load_in_4bit": true, "load_in_8bit": false,
          "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": true, "bnb_4bit_quant_storage": "uint8",
          "llm_int8_skip_modules": null})");
  EXPECT_EQ(c.saved_4bit.quant_type, "nf4");
  EXPECT_TRUE(c.saved_4bit.double_quant);
  const WeightQuant saved = resolve_weight_quant(c, {}, false);
  EXPECT_EQ(saved.format, WeightFormat::nf4);
  EXPECT_TRUE(saved.double_quant);
  EXPECT_NE(input_error_of([&] {
              resolve_weight_quant(c, {WeightFormat::fp4, true}, false);
            })
                .find("/m/config.json: the weights are saved as bitsandbytes nf4 double-quantized but the run asks "
                      "for fp4 double-quantized"),
            std::string::npos);
  EXPECT_NE(input_error_of([&] { resolve_weight_quant(c, {}, true); }).find("full fine-tuning"), std::string::npos);
  EXPECT_EQ(resolve_weight_quant(parse("null"), {WeightFormat::fp4, false}, false).format, WeightFormat::fp4);

  auto error = [&](const std::string& q) { return input_error_of([&] { parse(q); }); };
  EXPECT_NE(error(R"({"quant_method": "bitsandbytes", "load_in_8bit": true})").find("8-bit checkpoints are not"),
            std::string::npos);
  EXPECT_NE(error(R"({"quant_method": "gptq", "bits": 4})").find("\"gptq\": only bitsandbytes 4-bit"),
            std::string::npos);
  EXPECT_NE(error(R"({"quant_method": "bitsandbytes", "load_in_4bit": true, "llm_int8_skip_modules": ["q_proj"]})")
                .find("holds \"q_proj\""),
            std::string::npos);
  EXPECT_NE(error(R"({"quant_method": "bitsandbytes", "load_in_4bit": true, "bnb_4bit_quant_type": "int4"})")
                .find("only nf4 and fp4"),
            std::string::npos);
}

}  // namespace
}  // namespace qsft::test
