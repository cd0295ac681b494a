// qwen-sft plan cfg.json [--device cpu|cuda] [--device-memory GIB] [--world-size N] [--set k=v ...]: the memory a
// run will take (per rank of N data-parallel ranks: the AdamW moments sharded).
#include <cstdio>

#include "engine/train/plan.h"
#include "tools/cli.h"

namespace qsft::cli {
namespace {

int run(const Args& args) {
  Flags f = parse_flags(args, {"set", "device", "device-memory", "world-size"}, {});
  if (f.positional.size() != 1)
    throw InputError(
        "usage: qwen-sft plan cfg.json [--device cpu|cuda] [--device-memory GIB] [--world-size N] [--set k=v ...]");
  const TrainConfig cfg = load_train_config(f.positional[0], f.all("set"));
  const std::string dev = f.get("device", cfg.device == "auto" ? (cuda_available() ? "cuda" : "cpu") : cfg.device);
  if (dev != "cpu" && dev != "cuda") throw InputError("--device must be cpu or cuda");
  const size_t avail = size_t(std::stod(f.get("device-memory", "0")) * double(1ull << 30));
  const std::string world = f.get("world-size", "1");
  if (world.empty() || world.size() > 6 || world.find_first_not_of("0123456789") != std::string::npos || world == "0")
    throw InputError("--world-size must be a rank count >= 1, not '" + world + "'");
  const TrainingPlan p = plan_training(cfg, dev == "cpu" ? Device::CPU : Device::CUDA, avail, std::stoi(world));
  std::printf("%s", p.report().c_str());
  return p.fits() ? 0 : 3;
}

const bool registered = register_command(
    {"plan", "cfg.json [--device cpu|cuda] [--device-memory GIB] [--world-size N] [--set key.path=value ...]",
     "memory plan per rank and whether it fits (exit 3 when it does not)", run});

}  // namespace
}  // namespace qsft::cli
