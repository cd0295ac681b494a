// RoPE scaling (linear, dynamic, yarn, llama3) against transformers: tests/data/rope_golden.json holds, per
// config.json, the fp32 inv_freq bits and attention_scaling of transformers' Qwen2RotaryEmbedding after a forward
// pass over seq_len positions (tools/make_rope_golden.py). Our parse + rope_table must give the same bits, except
// where torch's SIMD powf (up to 1 ulp off) and the C library's correctly rounded powf differ on theta^(2i/D): the
// generator lists those i (pow_off_indices), and there inv_freq may be 2 ulps apart (1 ulp of the power is up to 2
// ulps of its reciprocal: their mantissas sit at opposite ends of a binade).
#include <simdjson.h>

#include <bit>
#include <cstdio>
#include <set>
#include <string>

#include "engine/io/model_config.h"
#include "engine/model/rope_freqs.h"
#include "fixture.h"
#include "test_util.h"

namespace qsft {
namespace {

using test::input_error_of;
using test::read_file;
using test::repo_testdata;

const char* kTiny = R"({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 128,
  "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
  "vocab_size": 32, "max_position_embeddings": 131072)";

Qwen2Config tiny(const std::string& extra) {
  return Qwen2Config::parse(std::string(kTiny) + extra + "}", "config.json");
}

TEST(RopeScaling, MatchesTransformersBitForBit) {
  const std::string text = read_file(repo_testdata() / "rope_golden.json");
  simdjson::dom::parser parser;
  simdjson::dom::element root = parser.parse(text);
  int cases = 0;
  for (simdjson::dom::element c : root["cases"].get_array()) {
    const std::string name{std::string_view(c["name"])};
    SCOPED_TRACE(name);
    const Qwen2Config cfg = Qwen2Config::parse(simdjson::to_string(c["config"]), "config.json");
    const RopeTable t = rope_table(cfg, int64_t(c["seq_len"]));
    simdjson::dom::array bits = c["inv_freq_bits"];
    ASSERT_EQ(t.inv_freq.size(), bits.size());
    std::set<size_t> pow_off;
    for (simdjson::dom::element i : c["pow_off_indices"].get_array()) pow_off.insert(size_t(int64_t(i)));
    size_t i = 0;
    for (simdjson::dom::element b : bits) {
      const uint32_t want = uint32_t(std::stoul(std::string(std::string_view(b)), nullptr, 16));
      const uint32_t got = std::bit_cast<uint32_t>(t.inv_freq[i]);  // positive floats: ulps are integer steps
      const uint32_t ulps = got > want ? got - want : want - got;
      EXPECT_LE(ulps, pow_off.count(i) ? 2u : 0u)
          << "inv_freq[" << i << "] = " << t.inv_freq[i] << ", transformers " << std::bit_cast<float>(want);
      ++i;
    }
    // transformers keeps attention_scaling as a Python float and multiplies the fp32 cos/sin by it in fp32.
    EXPECT_EQ(t.attention_scaling, float(double(c["attention_scaling"])));
    // to_json writes the scaling back (v4 rope_scaling and v5 rope_parameters) so that it reads as the same table.
    const RopeTable back = rope_table(Qwen2Config::parse(cfg.to_json(), "config.json"), int64_t(c["seq_len"]));
    EXPECT_EQ(back.inv_freq, t.inv_freq);
    EXPECT_EQ(back.attention_scaling, t.attention_scaling);
    ++cases;
  }
  EXPECT_GE(cases, 20);
}

TEST(RopeScaling, V4AndV5Spellings) {
  const Qwen2Config v4 = tiny(R"(, "rope_theta": 1e6,
      "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768})");
  const Qwen2Config v5 = tiny(R"(, "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0,
      "original_max_position_embeddings": 32768})");
  for (const Qwen2Config* c : {&v4, &v5}) {
    EXPECT_EQ(c->rope_theta, 1e6);
    EXPECT_EQ(c->rope_scaling.type, "yarn");
    EXPECT_EQ(c->rope_scaling.factor, 4.0);
    EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 32768);
  }
  // As transformers v5: a non-empty rope_scaling wins over rope_parameters, "rope_type" over "type", the
  // parameters' rope_theta over the top-level one; original_max_position_embeddings defaults to
  // max_position_embeddings.
  const Qwen2Config both = tiny(R"(, "rope_theta": 5e5, "rope_scaling": {"type": "linear", "rope_type": "dynamic",
      "factor": 2.0}, "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0})");
  EXPECT_EQ(both.rope_scaling.type, "dynamic");
  EXPECT_EQ(both.rope_theta, 5e5);
  const Qwen2Config empty_v4 = tiny(R"(, "rope_scaling": {}, "rope_parameters": {"rope_type": "yarn", "factor": 2})");
  EXPECT_EQ(empty_v4.rope_scaling.type, "yarn");
  EXPECT_EQ(empty_v4.rope_scaling.original_max_position_embeddings, 131072);
  // The written config.json carries both forms.
  const std::string text = v4.to_json();
  for (const char* want : {"\"rope_scaling\": {", "\"type\": \"yarn\"", "\"rope_parameters\": {",
                           "\"rope_type\": \"yarn\"", "\"original_max_position_embeddings\": 32768"})
    EXPECT_NE(text.find(want), std::string::npos) << want << " in\n" << text;
}

TEST(RopeScaling, DynamicDependsOnSeqLenAboveMaxPositions) {
  const Qwen2Config c = tiny(R"(, "rope_parameters": {"rope_type": "dynamic", "factor": 2.0})");
  const RopeTable plain = rope_table(tiny(""), 1);
  EXPECT_EQ(rope_table(c, 100).inv_freq, plain.inv_freq);
  EXPECT_EQ(rope_table(c, 131072).inv_freq, plain.inv_freq);
  const RopeTable longer = rope_table(c, 131073), longest = rope_table(c, 4 * 131072);
  EXPECT_EQ(longer.inv_freq[0], 1.0f);
  EXPECT_LT(longest.inv_freq.back(), longer.inv_freq.back());
  EXPECT_LT(longer.inv_freq.back(), plain.inv_freq.back());
}

// The model refreshes a dynamic table per batch from its longest sequence (transformers: max(position_ids) + 1):
// batches within max_position_embeddings compute plain RoPE, longer ones the grown base, and a short batch after a
// long one is plain again.
TEST(RopeScaling, ModelRefreshesDynamicTablePerBatch) {
  if (!std::filesystem::exists(repo_testdata() / "fixtures" / "untied" / "golden.json"))
    GTEST_SKIP() << "skipped: tests/data/fixtures/untied is absent";
  test::Fixture plain = test::load_fixture("untied");
  test::Fixture dynamic = plain;
  dynamic.config.max_position_embeddings = 8;
  dynamic.config.rope_scaling.type = "dynamic";
  dynamic.config.rope_scaling.factor = 2.0;
  PackedBatch short_batch, long_batch;
  std::vector<int32_t> ids(12);
  for (size_t t = 0; t < ids.size(); ++t) ids[t] = int32_t((7 * t + 3) % size_t(plain.config.vocab_size));
  const std::vector<uint8_t> mask(ids.size(), 1);
  short_batch.append(std::span(ids).first(8), std::span(mask).first(8));
  long_batch.append(std::span(ids).first(8), std::span(mask).first(8));
  long_batch.append(ids, mask);
  auto ops = make_cpu_ops();
  auto p = test::make_model(*ops, plain, long_batch.num_tokens(), false);
  auto d = test::make_model(*ops, dynamic, long_batch.num_tokens(), false);
  EXPECT_EQ(d->logits(short_batch), p->logits(short_batch));
  const std::vector<float> pl = p->logits(long_batch), dl = d->logits(long_batch);
  const size_t V = size_t(plain.config.vocab_size);
  // Position 0 does not rotate; every later row of both sequences sees the grown base.
  EXPECT_TRUE(std::equal(dl.begin(), dl.begin() + V, pl.begin()));
  EXPECT_GT(test::rel_max(dl.data() + V, pl.data() + V, V * 7), 1e-4);
  EXPECT_GT(test::rel_max(dl.data() + 9 * V, pl.data() + 9 * V, V * 11), 1e-4);
  EXPECT_EQ(d->logits(short_batch), p->logits(short_batch));
}

TEST(RopeScaling, RefusesWhatItCannotCompute) {
  auto error = [](const std::string& extra) { return input_error_of([&] { tiny(extra); }); };
  std::string msg = error(R"(, "rope_scaling": {"type": "longrope", "factor": 2.0})");
  EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"rope_scaling.type\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"longrope\""), std::string::npos) << msg;
  msg = error(R"(, "rope_parameters": {"rope_type": "su", "rope_theta": 1e6})");
  EXPECT_NE(msg.find("\"rope_parameters.rope_type\""), std::string::npos) << msg;
  msg = error(R"(, "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e6})");
  EXPECT_NE(msg.find("missing key \"rope_parameters.factor\""), std::string::npos) << msg;
  msg = error(R"(, "rope_scaling": {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0})");
  EXPECT_NE(msg.find("\"rope_scaling.high_freq_factor\""), std::string::npos) << msg;
  msg = error(R"(, "rope_scaling": {"type": "linear", "factor": -1})");
  EXPECT_NE(msg.find("\"rope_scaling.factor\" must be a positive number"), std::string::npos) << msg;
  msg = error(R"(, "partial_rotary_factor": 0.5)");
  EXPECT_NE(msg.find("partial_rotary_factor"), std::string::npos) << msg;
  msg = error(R"(, "rope_parameters": {"rope_type": "default", "partial_rotary_factor": 0.25})");
  EXPECT_NE(msg.find("partial_rotary_factor"), std::string::npos) << msg;
}

}  // namespace
}  // namespace qsft
