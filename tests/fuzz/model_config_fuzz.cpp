// Fuzzes config.json (Qwen2Config::parse) and what is computed from an accepted config before any weight is read:
// the LoRA layout and the memory plan (`qwen-sft plan`). What parse accepts must write back (to_json, the merged
// model's config.json) to text that parses to the same config.
#include <cstdint>
#include <string>

#include "engine/io/model_config.h"
#include "engine/model/lora.h"
#include "engine/model/qwen2.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  qsft::fuzz::expect_input_errors({"config.json"}, [&] {
    const qsft::Qwen2Config c = qsft::Qwen2Config::parse(text, "fuzz/config.json");
    const std::string written = c.to_json();
    const qsft::Qwen2Config again = qsft::Qwen2Config::parse(written, "written/config.json");
    qsft::fuzz::require(again.to_json() == written, "parse(to_json()) gives the same config");
    qsft::LoraConfig lora;
    lora.set_targets({"all-linear"}, "fuzz");
    const qsft::LoraLayout layout(c, lora);
    qsft::Qwen2Model::plan_memory(c, lora, qsft::ModelOptions{.max_tokens = 512}, qsft::Device::CPU);
  });
  return 0;
}
