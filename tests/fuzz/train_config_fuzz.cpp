// Fuzzes cfg.json of `qwen-sft train` with `--set` overrides: the input is the config text, then NUL-separated
// overrides ("a.b=value"), applied as load_train_config applies them. A config that parses must parse again from
// its resolved form (written to output_dir/config.json and compared on resume) to the same run.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/train/config_overrides.h"
#include "engine/train/train_config.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto [config, rest] = qsft::fuzz::split_at_nul(std::string_view(reinterpret_cast<const char*>(data), size));
  const std::string text(config);  // (a lambda cannot capture a structured binding in clang 14)
  std::vector<std::string> overrides;
  while (!rest.empty()) {
    auto [one, more] = qsft::fuzz::split_at_nul(rest);
    overrides.emplace_back(one);
    rest = more;
  }
  const std::string path = "/fuzz/cfg.json";
  qsft::fuzz::expect_input_errors({path, "--set "}, [&] {
    const qsft::TrainConfig c = qsft::parse_train_config(qsft::apply_overrides(text, overrides, path), path);
    const qsft::TrainConfig again = qsft::parse_train_config(c.resolved_json, "/elsewhere/config.json");
    qsft::fuzz::require(qsft::resume_incompatible_keys(c.resolved_json, again.resolved_json).empty(),
                        "the resolved config parses to the same run");
  });
  return 0;
}
