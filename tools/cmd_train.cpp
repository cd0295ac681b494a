// qwen-sft train cfg.json [--set key.path=value ...]: train LoRA; resumes when output_dir has a checkpoint.
// Exits 0 when done, 2 on bad input (and on divergence), 130 / 143 when SIGINT / SIGTERM stopped it (after a
// checkpoint of the last step).
#include <cstdio>

#include "engine/train/stop_signals.h"
#include "engine/train/trainer.h"
#include "tools/cli.h"

namespace qsft::cli {
namespace {

int run(const Args& args) {
  Flags f = parse_flags(args, {"set"}, {"quiet"});
  if (f.positional.size() != 1) throw InputError("usage: qwen-sft train cfg.json [--set key.path=value ...]");
  TrainConfig cfg = load_train_config(f.positional[0], f.all("set"));
  TrainResult r = train(cfg, !f.has("quiet"));
  if (r.rank != 0) return r.stopped_by_signal ? 128 + r.stopped_by_signal : 0;  // rank 0 reports
  if (r.stopped_by_signal) {  // exit 128 + signal, as a shell reports a process killed by it
    const std::string saved = r.adapter_dir.empty()
                                  ? "no checkpoint yet"
                                  : "checkpoint " + r.adapter_dir + " written; the same command resumes";
    std::fprintf(stderr, "qwen-sft train: stopped by %s after step %lld; %s\n", StopSignals::name(r.stopped_by_signal),
                 (long long)r.steps, saved.c_str());
    return 128 + r.stopped_by_signal;
  }
  if (r.steps_this_run == 0)
    std::printf("already trained %lld steps; checkpoint %s\n", (long long)r.steps, r.adapter_dir.c_str());
  else
    std::printf("trained %lld steps: final loss %.4f%s; checkpoint %s\n", (long long)r.steps, r.final_loss,
                r.eval_loss >= 0 ? (", eval loss " + std::to_string(r.eval_loss)).c_str() : "", r.adapter_dir.c_str());
  return 0;
}

const bool registered = register_command({"train", "cfg.json [--set key.path=value ...] [--quiet]",
                                          "train LoRA (resumes from output_dir's newest checkpoint)", run});

}  // namespace
}  // namespace qsft::cli
