// qwen-sft export RUN_DIR [--out DIR] [--merge]: the PEFT adapter of a run's newest checkpoint (or of a checkpoint
// directory given directly), or with --merge a merged bf16 model directory.
#include <cstdio>

#include "engine/io/merge_model.h"
#include "engine/io/model_config.h"
#include "engine/io/peft_adapter.h"
#include "engine/train/checkpoint.h"
#include "engine/train/train_config.h"
#include "tools/cli.h"

namespace qsft::cli {
namespace {

namespace fs = std::filesystem;

int run(const Args& args) {
  Flags f = parse_flags(args, {"out"}, {"merge"});
  if (f.positional.size() != 1) throw InputError("usage: qwen-sft export RUN_DIR [--out DIR] [--merge]");
  const fs::path given = fs::absolute(f.positional[0]);
  // RUN_DIR/config.json names the model; a checkpoint directory's parent is the run.
  const bool is_checkpoint = fs::exists(given / "adapter_model.safetensors");
  const fs::path run_dir = is_checkpoint ? given.parent_path() : given;
  if (!fs::exists(run_dir / "config.json"))
    throw input_error(run_dir.string(), "not a training run (no config.json; pass the train output_dir)");
  const TrainConfig cfg = load_train_config(run_dir / "config.json", {});
  fs::path ckpt = given;
  if (!is_checkpoint) {
    auto latest = latest_checkpoint(run_dir);
    if (!latest) throw input_error(run_dir.string(), "has no checkpoint-* directory yet");
    ckpt = *latest;
  }
  const LoraConfig lora = read_peft_config(ckpt);
  const LoraLayout layout(Qwen2Config::load(cfg.model), lora);
  const std::vector<float> params = read_peft_weights(ckpt, layout);
  const fs::path out = f.has("out") ? fs::path(f.get("out")) : run_dir / (f.has("merge") ? "merged" : "adapter");
  if (f.has("merge"))
    write_merged_model(cfg.model, layout, params, out);
  else
    write_peft_adapter(out, layout, params, cfg.model);
  std::printf("wrote %s %s from %s\n", f.has("merge") ? "merged model" : "PEFT adapter", out.string().c_str(),
              ckpt.string().c_str());
  return 0;
}

const bool registered =
    register_command({"export", "RUN_DIR|CHECKPOINT [--out DIR] [--merge]", "PEFT adapter or merged model", run});

}  // namespace
}  // namespace qsft::cli
