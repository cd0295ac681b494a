// qwen-sft data cfg.json [--set k=v ...]: tokenize and pack the config's data, print the statistics, fill the
// token cache (the same cache `qwen-sft train` with the same overrides uses).
// The config is read and checked as `qwen-sft train` reads it (engine/train/train_config.h); the data goes to
// data.cache_dir, or <output_dir>/cache by default.
#include <unistd.h>

#include <cstdio>

#include "data/dataset.h"
#include "engine/train/train_config.h"
#include "tools/cli.h"

namespace qsft::cli {
namespace {

int run(const Args& args) {
  Flags f = parse_flags(args, {"set"}, {});
  if (f.positional.size() != 1) throw InputError("usage: qwen-sft data cfg.json [--set key.path=value ...]");
  const TrainConfig cfg = load_train_config(f.positional[0], f.all("set"));
  PreparedData d = prepare_data(run_data_config(cfg), cfg.model, isatty(STDERR_FILENO));
  std::fputs(d.stats.report().c_str(), stdout);
  return 0;
}

const bool registered = register_command({"data", "cfg.json [--set key.path=value ...]",
                                          "tokenize + pack the data, print dataset statistics, fill the cache", run});

}  // namespace
}  // namespace qsft::cli
