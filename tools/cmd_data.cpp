// qwen-sft data cfg.json [--set k=v ...]: tokenize and pack the config's data, print the statistics, fill the
// token cache (the same cache `qwen-sft train` with the same overrides uses).
// Reads the config's "model" (a model folder, relative to the config file), "data" and, for the default cache
// folder (<output_dir>/cache), "output_dir"; other top-level keys are the trainer's.
#include <simdjson.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/dataset.h"
#include "engine/base/error.h"
#include "engine/train/config_overrides.h"
#include "tools/cli.h"

namespace qsft::cli {
namespace {

namespace fs = std::filesystem;

int run(const Args& args) {
  Flags f = parse_flags(args, {"set"}, {});
  if (f.positional.size() != 1) throw InputError("usage: qwen-sft data cfg.json [--set key.path=value ...]");
  const std::string config_path = f.positional[0];
  std::ifstream in(config_path, std::ios::binary);
  if (!in) throw input_error(config_path, "cannot read the config");
  std::stringstream raw;
  raw << in.rdbuf();
  const simdjson::padded_string text_json(apply_overrides(raw.str(), f.all("set"), config_path));
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto err = parser.parse(text_json).get(root))
    throw input_error(config_path, std::string("cannot read the config: ") + simdjson::error_message(err));
  const fs::path base = fs::absolute(config_path).parent_path();
  auto text = [&](const char* key) -> std::string {
    std::string_view s;
    simdjson::dom::element v;
    if (root.at_key(key).get(v)) return "";
    if (v.get_string().get(s)) throw input_error(config_path, std::string(key) + ": expected a string");
    return std::string(s);
  };
  const std::string model = text("model");
  if (model.empty()) throw input_error(config_path, "model: missing (the model folder with the tokenizer)");
  simdjson::dom::element data;
  if (root.at_key("data").get(data)) throw input_error(config_path, "data: missing");
  DataConfig cfg = parse_data_config(simdjson::minify(data), config_path, base);
  if (cfg.cache_dir.empty() && !text("output_dir").empty()) cfg.cache_dir = (base / text("output_dir") / "cache").string();
  PreparedData d = prepare_data(cfg, (base / model).lexically_normal().string(), isatty(STDERR_FILENO));
  std::fputs(d.stats.report().c_str(), stdout);
  return 0;
}

const bool registered = register_command(
    {"data", "cfg.json [--set key.path=value ...]",
     "tokenize + pack the data, print dataset statistics, fill the cache", run});

}  // namespace
}  // namespace qsft::cli
