// qwen-sft export RUN_DIR [--out DIR] [--merge]: the PEFT adapter of a run's newest checkpoint (or of a checkpoint
// directory given directly), or with --merge a merged bf16 model directory. A full fine-tuning run exports its
// model directory (bf16, sharded safetensors with index, config, tokenizer, generation config).
#include <cstdio>

#include "engine/io/full_model.h"
#include "engine/io/merge_model.h"
#include "engine/io/model_config.h"
#include "engine/io/peft_adapter.h"
#include "engine/train/checkpoint.h"
#include "engine/train/train_config.h"
#include "tools/cli.h"

namespace qsft::cli {
namespace {

namespace fs = std::filesystem;

// A full fine-tuning checkpoint's F32 master weights -> a bf16 model directory (fp32 for an fp32 base).
int export_full(const TrainConfig& cfg, const fs::path& ckpt, const fs::path& out, bool merge) {
  if (merge)
    throw input_error(ckpt.string(), "a full fine-tuning run has no adapter to merge: export it without --merge");
  const FullLayout layout(Qwen2Config::load(cfg.model));
  export_full_model(cfg.model, layout, layout.load(ckpt.string()), out);
  std::printf("wrote model %s from %s\n", out.string().c_str(), ckpt.string().c_str());
  return 0;
}

int run(const Args& args) {
  Flags f = parse_flags(args, {"out"}, {"merge"});
  if (f.positional.size() != 1) throw InputError("usage: qwen-sft export RUN_DIR [--out DIR] [--merge]");
  const fs::path given = fs::absolute(f.positional[0]);
  // RUN_DIR/config.json names the model; a checkpoint directory's parent is the run.
  const bool is_checkpoint =
      fs::exists(given / "adapter_model.safetensors") || fs::exists(given / "trainer_state.json");
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
  if (cfg.full_finetuning)
    return export_full(cfg, ckpt, f.has("out") ? fs::path(f.get("out")) : run_dir / "model", f.has("merge"));
  const LoraConfig lora = read_peft_config(ckpt);
  const LoraLayout layout(Qwen2Config::load(cfg.model), lora);
  const std::vector<float> params = read_peft_weights(ckpt, layout);
  const fs::path out = f.has("out") ? fs::path(f.get("out")) : run_dir / (f.has("merge") ? "merged" : "adapter");
  if (f.has("merge"))
    export_merged_model(cfg.model, layout, params, out);
  else
    write_peft_adapter(out, layout, params, cfg.model);
  std::printf("wrote %s %s from %s\n", f.has("merge") ? "merged model" : "PEFT adapter", out.string().c_str(),
              ckpt.string().c_str());
  return 0;
}

const bool registered = register_command({"export", "RUN_DIR|CHECKPOINT [--out DIR] [--merge]",
                                          "PEFT adapter, merged model, or a full fine-tuning run's model", run});

}  // namespace
}  // namespace qsft::cli
