// config.json -> Qwen2Config and back (engine/io/model_config.h).
#include "engine/io/model_config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <ostream>

#include "engine/base/error.h"
#include "test_util.h"

namespace qsft {
namespace {

namespace fs = std::filesystem;

using test::input_error_of;

// The sizes a config states, compared as one value (gtest prints them all when they differ).
struct Sizes {
  int64_t hidden, intermediate, layers, heads, kv_heads, head_dim, vocab;
  bool operator==(const Sizes&) const = default;
  friend void PrintTo(const Sizes& s, std::ostream* os) {
    *os << "{hidden " << s.hidden << ", intermediate " << s.intermediate << ", layers " << s.layers << ", heads "
        << s.heads << ", kv_heads " << s.kv_heads << ", head_dim " << s.head_dim << ", vocab " << s.vocab << "}";
  }
};
Sizes sizes_of(const Qwen2Config& c) {
  return {c.hidden_size,         c.intermediate_size, c.num_hidden_layers, c.num_attention_heads,
          c.num_key_value_heads, c.head_dim,          c.vocab_size};
}

// A transformers v4 config of a small Qwen2 as (key, JSON text) pairs, edited per test, then written out.
using ConfigKeys = std::vector<std::pair<std::string, std::string>>;
ConfigKeys base_config() {
  return {{"architectures", R"(["Qwen2ForCausalLM"])"},
          {"model_type", R"("qwen2")"},
          {"hidden_size", "64"},
          {"intermediate_size", "160"},
          {"num_hidden_layers", "2"},
          {"num_attention_heads", "4"},
          {"num_key_value_heads", "2"},
          {"vocab_size", "768"},
          {"max_position_embeddings", "2048"},
          {"rope_theta", "1000000.0"},
          {"rms_norm_eps", "1e-06"},
          {"tie_word_embeddings", "true"},
          {"hidden_act", R"("silu")"},
          {"attention_dropout", "0.0"},
          {"use_sliding_window", "false"},
          {"sliding_window", "4096"},
          {"rope_scaling", "null"},
          {"torch_dtype", R"("bfloat16")"},
          {"bos_token_id", "700"},
          {"eos_token_id", "702"}};
}
ConfigKeys edited(std::map<std::string, std::string> changes, const std::vector<std::string>& removed = {}) {
  ConfigKeys out;
  for (auto& [k, v] : base_config()) {
    if (std::find(removed.begin(), removed.end(), k) != removed.end()) continue;
    auto it = changes.find(k);
    out.emplace_back(k, it == changes.end() ? v : it->second);
    if (it != changes.end()) changes.erase(it);
  }
  for (auto& kv : changes) out.push_back(kv);  // new keys
  return out;
}

class ModelConfigTest : public test::TempDirTest {
 protected:
  Qwen2Config load(const ConfigKeys& keys) {
    std::string text = "{";
    for (auto& [k, v] : keys) text += (text.size() > 1 ? ",\n  \"" : "\n  \"") + k + "\": " + v;
    std::ofstream(dir_ / "config.json") << text << "\n}\n";
    return Qwen2Config::load(dir_);
  }
  // The error of loading `keys`; checks that it starts with the file's path and names `key`.
  std::string load_error(const ConfigKeys& keys, const std::string& key) {
    std::string msg = input_error_of([&] { load(keys); });
    EXPECT_EQ(msg.rfind((dir_ / "config.json").string() + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(key), std::string::npos) << msg;
    return msg;
  }
};

TEST_F(ModelConfigTest, ReadsQwen25_05BInstruct) {
  fs::path dir = test::shared_testdata() / "qwen2.5" / "Qwen2.5-0.5B-Instruct";
  QSFT_REQUIRE_PATH(dir / "config.json");
  Qwen2Config c = Qwen2Config::load(dir);
  EXPECT_EQ(sizes_of(c), (Sizes{896, 4864, 24, 14, 2, 64, 151936}));
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 151643);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{151645});
  EXPECT_EQ(c.dtype, "float32");
}

TEST_F(ModelConfigTest, ReadsQwen25_7BInstruct) {
  fs::path dir = test::shared_testdata() / "qwen2.5" / "Qwen2.5-7B-Instruct";
  QSFT_REQUIRE_PATH(dir / "config.json");
  Qwen2Config c = Qwen2Config::load(dir);
  EXPECT_EQ(sizes_of(c), (Sizes{3584, 18944, 28, 28, 4, 128, 152064}));
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.dtype, "bfloat16");
}

TEST_F(ModelConfigTest, ReadsTransformersV5Spelling) {
  Qwen2Config c = load(edited({{"rope_parameters", R"({"rope_theta": 500000.0, "rope_type": "default"})"},
                               {"dtype", R"("float16")"},
                               {"eos_token_id", "[702, 700]"},
                               {"head_dim", "32"},
                               {"layer_types", R"(["full_attention", "full_attention"])"}},
                              {"rope_theta", "torch_dtype", "rope_scaling", "sliding_window"}));
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.dtype, "float16");
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{702, 700}));
  EXPECT_EQ(c.head_dim, 32);
}

TEST_F(ModelConfigTest, DefaultsFollowTransformers) {
  Qwen2Config c = load(edited(
      {}, {"tie_word_embeddings", "rope_theta", "rms_norm_eps", "max_position_embeddings", "bos_token_id",
           "eos_token_id", "torch_dtype", "hidden_act", "attention_dropout", "use_sliding_window", "architectures"}));
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_FALSE(c.bos_token_id.has_value());
  EXPECT_TRUE(c.eos_token_ids.empty());
  EXPECT_EQ(c.dtype, "");
}

TEST_F(ModelConfigTest, ToJsonReadsBackTheSameConfig) {
  Qwen2Config c = load(edited({{"head_dim", "32"}, {"eos_token_id", "[702, 700]"}}));
  std::string text = c.to_json();
  EXPECT_NE(text.find("\"rope_theta\": 1000000.0"), std::string::npos) << text;
  EXPECT_NE(text.find("\"rms_norm_eps\": 1e-06"), std::string::npos) << text;
  EXPECT_NE(text.find("\"architectures\": [\n    \"Qwen2ForCausalLM\"\n  ]"), std::string::npos) << text;
  Qwen2Config back = Qwen2Config::parse(text, "written");
  EXPECT_EQ(sizes_of(back), sizes_of(c));
  EXPECT_EQ(back.head_dim, 32);
  EXPECT_EQ(back.max_position_embeddings, c.max_position_embeddings);
  EXPECT_EQ(back.rope_theta, c.rope_theta);
  EXPECT_EQ(back.rms_norm_eps, c.rms_norm_eps);
  EXPECT_EQ(back.tie_word_embeddings, c.tie_word_embeddings);
  EXPECT_EQ(back.bos_token_id, c.bos_token_id);
  EXPECT_EQ(back.eos_token_ids, c.eos_token_ids);
  EXPECT_EQ(back.dtype, "bfloat16");
}

TEST_F(ModelConfigTest, MissingKeyIsNamed) {
  for (const char* key : {"num_key_value_heads", "hidden_size", "vocab_size", "model_type"}) {
    std::string msg = load_error(edited({}, {key}), key);
    EXPECT_EQ(msg, (dir_ / "config.json").string() + ": missing key \"" + key + "\"");
  }
}

TEST_F(ModelConfigTest, WrongTypeNamesKeyAndExpectedType) {
  std::string msg = load_error(edited({{"hidden_size", R"("896")"}}), "hidden_size");
  EXPECT_NE(msg.find("key \"hidden_size\" must be an integer, got a string"), std::string::npos) << msg;
  msg = load_error(edited({{"num_attention_heads", "4.5"}}), "num_attention_heads");
  EXPECT_NE(msg.find("must be an integer, got a fractional number"), std::string::npos) << msg;
  msg = load_error(edited({{"rope_theta", "true"}}), "rope_theta");
  EXPECT_NE(msg.find("must be a number, got a boolean"), std::string::npos) << msg;
  load_error(edited({{"rope_parameters", R"({"rope_theta": "big"})"}}), "key \"rope_parameters.rope_theta\" must be");
  load_error(edited({{"eos_token_id", R"([702, "x"])"}}), "key \"eos_token_id\" must be an integer, got a string");
  msg = load_error(edited({{"tie_word_embeddings", "1"}}), "tie_word_embeddings");
  EXPECT_NE(msg.find("must be true or false, got"), std::string::npos) << msg;
}

TEST_F(ModelConfigTest, UnknownArchitectureSaysWhatIsSupported) {
  std::string msg = load_error(edited({{"architectures", R"(["LlamaForCausalLM"])"}}), "LlamaForCausalLM");
  EXPECT_NE(msg.find("supported: Qwen2ForCausalLM (model_type qwen2), Qwen3ForCausalLM"), std::string::npos) << msg;
  msg = load_error(edited({{"model_type", R"("llama")"}}, {"architectures"}), "model_type \"llama\"");
  EXPECT_NE(msg.find("supported: Qwen2ForCausalLM"), std::string::npos) << msg;
  // architectures and model_type must agree
  load_error(edited({{"architectures", R"(["Qwen3ForCausalLM"])"}}), "with model_type qwen2");
}

TEST_F(ModelConfigTest, Qwen3ReadsAttentionBiasAndHeadNorms) {
  const Qwen2Config q3 = load(edited({{"architectures", R"(["Qwen3ForCausalLM"])"}, {"model_type", R"("qwen3")"}}));
  EXPECT_EQ(q3.arch, ModelArch::qwen3);
  EXPECT_TRUE(q3.qk_norm());
  EXPECT_FALSE(q3.attention_bias) << "Qwen3's attention_bias defaults to false";
  const Qwen2Config biased = load(
      edited({{"architectures", R"(["Qwen3ForCausalLM"])"}, {"model_type", R"("qwen3")"}, {"attention_bias", "true"}}));
  EXPECT_TRUE(biased.attention_bias && biased.o_bias());
  // Written back and read again: the same architecture and bias.
  const Qwen2Config again = Qwen2Config::parse(biased.to_json(), "to_json");
  EXPECT_EQ(again.arch, ModelArch::qwen3);
  EXPECT_TRUE(again.attention_bias);
  const Qwen2Config q2 = load(edited({{"attention_bias", "false"}}));
  EXPECT_TRUE(q2.attention_bias) << "Qwen2's q/k/v always have a bias";
  EXPECT_FALSE(q2.qk_norm() || q2.o_bias());
}

TEST_F(ModelConfigTest, UnsupportedFeaturesAreRejected) {
  load_error(edited({{"use_sliding_window", "true"}}), "use_sliding_window");
  load_error(edited({{"layer_types", R"(["full_attention", "sliding_attention"])"}}), "layer_types");
  load_error(edited({{"rope_scaling", R"({"type": "longrope", "factor": 4.0})"}}), "RoPE type \"longrope\"");
  load_error(edited({{"rope_parameters", R"({"rope_theta": 1e6, "rope_type": "su", "factor": 2.0})"}}),
             "rope_parameters.rope_type\": RoPE type \"su\"");
  load_error(edited({{"attention_dropout", "0.1"}}), "attention_dropout");
  load_error(edited({{"hidden_act", R"("gelu")"}}), "hidden_act \"gelu\"");
  load_error(edited({{"num_key_value_heads", "3"}}), "num_key_value_heads 3");
  load_error(edited({{"hidden_size", "0"}}), "hidden_size");
  load_error(edited({{"hidden_size", "66"}}), "num_attention_heads");  // 66 / 4 heads: no head_dim
}

// Found with tests/fuzz/model_config_fuzz: sizes no model has made the memory plan overflow 64-bit integers
// (undefined behaviour) and the LoRA layout allocate without bound, where the config should be refused.
TEST_F(ModelConfigTest, SizesBeyondAnyModelAreRejected) {
  load_error(edited({{"num_hidden_layers", "8589934592"}}), "num_hidden_layers");
  load_error(edited({{"hidden_size", "1099511627776"}, {"num_attention_heads", "1048576"}}), "hidden_size");
  load_error(edited({{"intermediate_size", "4294967296"}}), "intermediate_size");
  load_error(edited({{"vocab_size", "4294967296"}}), "vocab_size");
  load_error(edited({{"num_attention_heads", "65536"}, {"num_key_value_heads", "65536"}}), "num_attention_heads");
  load_error(edited({{"head_dim", "1073741824"}}), "head_dim");
  load_error(edited({{"max_position_embeddings", "1099511627776"}}), "max_position_embeddings");
  // The largest Qwen2 (72B) and a wide head are within the limits.
  Qwen2Config c = load(edited({{"hidden_size", "8192"},
                               {"intermediate_size", "29568"},
                               {"num_hidden_layers", "80"},
                               {"num_attention_heads", "64"},
                               {"num_key_value_heads", "8"},
                               {"vocab_size", "152064"},
                               {"max_position_embeddings", "131072"}}));
  EXPECT_EQ(c.head_dim, 128);
}

TEST_F(ModelConfigTest, UnreadableOrBrokenFileIsAnInputError) {
  std::string msg = input_error_of([&] { Qwen2Config::load(dir_ / "absent"); });
  EXPECT_NE(msg.find((dir_ / "absent" / "config.json").string()), std::string::npos) << msg;
  std::ofstream(dir_ / "config.json") << "{\"hidden_size\": 64,";
  msg = input_error_of([&] { Qwen2Config::load(dir_); });
  EXPECT_EQ(msg.rfind((dir_ / "config.json").string() + ": invalid JSON", 0), 0u) << msg;
}

}  // namespace
}  // namespace qsft
