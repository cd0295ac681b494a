// PEFT adapter files: what we write reads back exactly, carries the fields PEFT and vLLM need, and adapters with
// features we do not implement are refused (loading them as plain LoRA would give wrong logits).
#include <simdjson.h>

#include <fstream>

#include "engine/base/error.h"
#include "engine/io/peft_adapter.h"
#include "fixture.h"

namespace qsft::test {
namespace {

class PeftAdapter : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    QSFT_REQUIRE_FIXTURE("tied");
    fixture_ = load_fixture("tied");
  }
  // The fixture's adapter_config.json (written by PEFT 0.21) with one key replaced.
  std::filesystem::path edited(const std::string& key, const std::string& json_value) {
    std::filesystem::path d = dir_ / key;
    std::filesystem::create_directories(d);
    simdjson::dom::parser p;
    simdjson::dom::element cfg = p.load((fixture_.dir / "adapter" / "adapter_config.json").string());
    std::string out = "{";
    for (auto f : cfg.get_object())
      if (f.key != key) out += "\"" + std::string(f.key) + "\":" + simdjson::minify(f.value) + ",";
    out += "\"" + key + "\":" + json_value + "}";
    std::ofstream(d / "adapter_config.json") << out;
    return d;
  }
  Fixture fixture_;
};

TEST_F(PeftAdapter, WritesWhatReadsBackAndWhatVllmNeeds) {
  const LoraLayout layout(fixture_.config, fixture_.lora);
  write_peft_adapter(dir_ / "a", layout, fixture_.lora_init, "/models/base");
  EXPECT_EQ(read_peft_weights(dir_ / "a", layout), fixture_.lora_init);
  const LoraConfig back = read_peft_config(dir_ / "a");
  EXPECT_EQ(back.r, fixture_.lora.r);
  EXPECT_EQ(back.alpha, fixture_.lora.alpha);
  EXPECT_EQ(back.use_rslora, fixture_.lora.use_rslora);
  EXPECT_EQ(back.target_names(), fixture_.lora.target_names());
  simdjson::dom::parser p;
  simdjson::dom::element cfg = p.load((dir_ / "a" / "adapter_config.json").string());
  EXPECT_EQ(std::string_view(cfg["peft_type"]), "LORA");
  EXPECT_EQ(std::string_view(cfg["task_type"]), "CAUSAL_LM");
  EXPECT_EQ(std::string_view(cfg["bias"]), "none");
  EXPECT_TRUE(cfg["modules_to_save"].is_null());  // vLLM refuses modules_to_save and DoRA
  EXPECT_FALSE(bool(cfg["use_dora"]));
  EXPECT_EQ(std::string_view(cfg["base_model_name_or_path"]), "/models/base");
  SafetensorsFile st = SafetensorsFile::open(dir_ / "a" / "adapter_model.safetensors");
  EXPECT_EQ(st.metadata().at("format"), "pt");
  EXPECT_EQ(st.tensors().size(), 2 * layout.slots().size());  // nothing but lora_A and lora_B
}

TEST_F(PeftAdapter, ReadsPeftsOwnFiles) {
  EXPECT_NO_THROW(read_peft_config(fixture_.dir / "adapter"));  // every key PEFT 0.21 writes
}

TEST_F(PeftAdapter, RefusesFeaturesItDoesNotImplement) {
  for (auto [key, value] : std::vector<std::pair<std::string, std::string>>{{"use_dora", "true"},
                                                                            {"bias", "\"all\""},
                                                                            {"lora_bias", "true"},
                                                                            {"modules_to_save", "[\"lm_head\"]"},
                                                                            {"rank_pattern", "{\"q_proj\": 4}"},
                                                                            {"exclude_modules", "[\"down_proj\"]"},
                                                                            {"layer_replication", "[[0, 1]]"},
                                                                            {"target_modules", "\".*q_proj\""}}) {
    const std::string e = input_error_of([&] { read_peft_config(edited(key, value)); });
    EXPECT_NE(e.find(key == "target_modules" ? "regular expression" : key), std::string::npos) << key << ": " << e;
    EXPECT_NE(e.find("adapter_config.json"), std::string::npos) << e;
  }
}

}  // namespace
}  // namespace qsft::test
