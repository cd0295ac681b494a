#include "engine/train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "data/batching.h"
#include "data/dataset.h"
#include "engine/base/error.h"
#include "engine/io/json_writer.h"
#include "engine/model/qwen2.h"
#include "engine/train/adamw.h"
#include "engine/train/checkpoint.h"
#include "engine/train/lr_schedule.h"
#include "engine/train/metrics.h"
#include "engine/train/plan.h"
#include "engine/train/progress.h"
#include "kernels/rng.h"

namespace qsft {

namespace fs = std::filesystem;

namespace {

std::unique_ptr<Ops> choose_backend(const std::string& device) {
  if (device == "cpu") return make_cpu_ops();
  if (device == "cuda" || cuda_available()) return make_cuda_ops();
  return make_cpu_ops();
}

// The micro-batches of every epoch, planned on demand; optimizer step s takes micro-batches
// [j * GA, (j + 1) * GA) of its epoch (the last step of an epoch may take fewer).
class StepPlanner {
 public:
  StepPlanner(const SequenceSet& data, const TrainConfig& c) : data_(data), c_(c) {}
  int64_t steps_in_epoch(int epoch) { return (int64_t(plan(epoch).size()) + ga() - 1) / ga(); }
  // (epoch, step within it) of global step s
  std::pair<int, int64_t> locate(int64_t s) {
    int e = 0;
    while (s >= steps_in_epoch(e)) s -= steps_in_epoch(e++);
    return {e, s};
  }
  std::vector<PackedBatch> batches(int64_t s) {
    auto [e, j] = locate(s);
    const auto& p = plan(e);
    std::vector<PackedBatch> out;
    for (int64_t i = j * ga(); i < std::min<int64_t>((j + 1) * ga(), int64_t(p.size())); ++i)
      out.push_back(make_batch(data_, p[size_t(i)]));
    return out;
  }
  double epoch_progress(int64_t s) {  // fractional epoch after step s, counted in micro-batches as transformers does
    auto [e, j] = locate(s);
    const int64_t micro_batches = int64_t(plan(e).size());
    return e + double(std::min((j + 1) * ga(), micro_batches)) / double(micro_batches);
  }

 private:
  int64_t ga() const { return c_.training.gradient_accumulation_steps; }
  const std::vector<std::vector<uint32_t>>& plan(int epoch) {
    while (int(plans_.size()) <= epoch)
      plans_.push_back(plan_epoch(data_, c_.data.max_length, c_.training.per_device_train_batch_size,
                                  c_.training.micro_batch_tokens, c_.training.seed, int(plans_.size()),
                                  c_.data.packing));
    return plans_[size_t(epoch)];
  }
  const SequenceSet& data_;
  const TrainConfig& c_;
  std::vector<std::vector<std::vector<uint32_t>>> plans_;
};

// Resuming with another data, model, LoRA or optimisation config would silently continue a different run.
void refuse_changed_config(const fs::path& out, const TrainConfig& cfg) {
  if (!latest_checkpoint(out) || !fs::exists(out / "config.json")) return;
  std::ifstream in(out / "config.json", std::ios::binary);
  const std::string before((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::vector<std::string> keys = resume_incompatible_keys(before, cfg.resolved_json);
  if (keys.empty()) return;
  std::string list;
  for (const std::string& k : keys) list += (list.empty() ? "" : ", ") + k;
  throw input_error(cfg.config_path.string(),
                    "output_dir " + out.string() + " holds checkpoints of a run with another config (" + list +
                        " differ from its config.json); resume with that config, or use a new output_dir");
}

struct EvalResult {
  double loss = 0, accuracy = 0;
};

EvalResult evaluate(Qwen2Model& model, const SequenceSet& eval, const TrainConfig& c) {
  double loss = 0;
  int64_t correct = 0, targets = 0;
  for (const auto& mb : plan_epoch(eval, c.data.max_length, c.training.per_device_train_batch_size,
                                   c.training.micro_batch_tokens, c.training.seed, 0, c.data.packing)) {
    LossStats s = model.forward_loss(make_batch(eval, mb));
    loss += s.loss_sum;
    correct += s.correct;
    targets += s.targets;
  }
  return {loss / double(std::max<int64_t>(targets, 1)), double(correct) / double(std::max<int64_t>(targets, 1))};
}

}  // namespace

TrainResult train(const TrainConfig& cfg, bool show_progress) {
  const fs::path out = cfg.output_dir;
  if (fs::exists(out) && !fs::is_directory(out))
    throw input_error(out.string(), "output_dir exists and is not a directory");
  if (!fs::is_directory(cfg.model)) throw input_error(cfg.model, "model directory not found");
  fs::create_directories(out);
  refuse_changed_config(out, cfg);
  write_file_atomic(out / "config.json", cfg.resolved_json);

  const TrainingOptions& T = cfg.training;
  std::unique_ptr<Ops> ops = choose_backend(cfg.device);
  const Qwen2Config mcfg = Qwen2Config::load(cfg.model);
  DataConfig dc = cfg.data;
  if (dc.cache_dir.empty()) dc.cache_dir = (out / "cache").string();
  const PreparedData data = prepare_data(dc, cfg.model, show_progress);
  if (data.train.size() == 0) throw input_error(cfg.config_path.string(), "the training data has no sequences");
  if (show_progress) std::fprintf(stderr, "%s", data.stats.report().c_str());

  StepPlanner planner(data.train, cfg);
  const int64_t total = T.max_steps > 0 ? T.max_steps
                                        : int64_t(std::ceil(T.num_train_epochs * double(planner.steps_in_epoch(0))));
  const LrSchedule sched{T.lr_scheduler_type, T.learning_rate,
                         warmup_steps_for(T.warmup_steps, T.warmup_ratio, total), total};

  Qwen2Model model(*ops, mcfg, cfg.lora, model_options(cfg));
  model.load_weights(cfg.model);
  const LoraLayout& layout = model.lora_layout();
  AdamWOptimizer opt(*ops, layout.num_params());

  TrainerState st;
  const auto resume_from = latest_checkpoint(out);
  if (resume_from) {
    Checkpoint ck = load_checkpoint(*resume_from, layout);
    model.set_lora_params(ck.lora);
    ops->copy_to_device(opt.exp_avg().data, ck.exp_avg.data(), ck.exp_avg.size() * 4);
    ops->copy_to_device(opt.exp_avg_sq().data, ck.exp_avg_sq.data(), ck.exp_avg_sq.size() * 4);
    opt.set_steps_taken(ck.state.global_step);
    st = ck.state;
  } else {
    model.set_lora_params(layout.init_params(T.seed));
  }
  const int64_t first_step = st.global_step;
  MetricsLog metrics(out, resume_from ? st.global_step : -1);
  Progress progress(total, show_progress);
  progress.line(std::string(resume_from ? "resuming from " + resume_from->string() : "training") + ": " +
                std::to_string(total) + " steps on " + ops->name() + ", " + std::to_string(layout.num_params()) +
                " LoRA parameters");

  TrainResult result;
  const auto t0 = std::chrono::steady_clock::now();
  const double seconds_before = st.train_seconds;
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  int64_t tokens_this_run = 0;
  for (int64_t s = st.global_step; s < total; ++s) {
    std::vector<PackedBatch> batches = planner.batches(s);
    int64_t N = 0;
    for (const PackedBatch& b : batches) N += b.num_targets();
    QSFT_CHECK(N > 0, "an optimizer step without trained targets");
    model.zero_grads();
    double loss_sum = 0;
    for (size_t i = 0; i < batches.size(); ++i) {
      const uint64_t seed = rng::hash(T.seed, uint64_t(s) * uint64_t(T.gradient_accumulation_steps) + i);
      const LossStats mb = model.forward_backward(batches[i], 1.0f / float(N), seed);
      loss_sum += mb.loss_sum;
      if (mb.targets > 0) {  // TRL: the mean over micro-batches of each one's token accuracy
        st.log_accuracy_sum += double(mb.correct) / double(mb.targets);
        st.log_micro_batches += 1;
      }
      tokens_this_run += batches[i].num_tokens();
      st.num_tokens += batches[i].num_tokens();
    }
    const double loss = loss_sum / double(N);
    const double grad_norm = clip_grad_norm(*ops, model.lora_grad_tensor(), T.max_grad_norm);
    const double lr = sched.at(s);
    opt.step(model.lora_param_tensor(), model.lora_grad_tensor(), T.adamw, lr);
    st.global_step = s + 1;
    st.log_loss_sum += loss;
    st.log_steps += 1;
    const bool last = st.global_step == total;
    const double tok_s = double(tokens_this_run) / std::max(elapsed(), 1e-9);
    progress.update(st.global_step, loss, tok_s, elapsed());

    if (st.global_step % std::max<int64_t>(cfg.logging_steps, 1) == 0 || last) {
      const double mean = st.log_loss_sum / double(st.log_steps);
      const double accuracy = st.log_accuracy_sum / double(std::max<int64_t>(st.log_micro_batches, 1));
      metrics.log(st.global_step, {{"epoch", planner.epoch_progress(s)}, {"loss", mean}, {"grad_norm", grad_norm},
                                   {"learning_rate", lr}, {"num_tokens", double(st.num_tokens)},
                                   {"mean_token_accuracy", accuracy}, {"tokens_per_second", tok_s}});
      char text[200];
      std::snprintf(text, sizeof text, "step %lld/%lld  loss %.4f  grad_norm %.4f  lr %.3g  %.0f tok/s",
                    (long long)st.global_step, (long long)total, mean, grad_norm, lr, tok_s);
      progress.line(text);
      result.final_loss = mean;
      st.log_loss_sum = st.log_accuracy_sum = 0;  // a new logging window
      st.log_steps = st.log_micro_batches = 0;
    }
    if (data.eval.size() > 0 && ((cfg.eval_steps > 0 && st.global_step % cfg.eval_steps == 0) || last)) {
      EvalResult ev = evaluate(model, data.eval, cfg);
      metrics.log(st.global_step,
                  {{"epoch", planner.epoch_progress(s)}, {"eval_loss", ev.loss}, {"eval_accuracy", ev.accuracy}});
      char text[160];
      std::snprintf(text, sizeof text, "step %lld  eval_loss %.4f  eval_accuracy %.4f", (long long)st.global_step,
                    ev.loss, ev.accuracy);
      progress.line(text);
      result.eval_loss = ev.loss;
    }
    if ((cfg.save_steps > 0 && st.global_step % cfg.save_steps == 0) || last) {
      st.train_seconds = seconds_before + elapsed();
      Checkpoint ck{st, model.lora_params(), {}, {}};
      ck.exp_avg.resize(size_t(layout.num_params()));
      ck.exp_avg_sq.resize(size_t(layout.num_params()));
      ops->copy_to_host(ck.exp_avg.data(), opt.exp_avg().data, ck.exp_avg.size() * 4);
      ops->copy_to_host(ck.exp_avg_sq.data(), opt.exp_avg_sq().data, ck.exp_avg_sq.size() * 4);
      save_checkpoint(out, layout, ck, cfg.model, cfg.save_total_limit);
    }
  }
  result.steps_this_run = st.global_step - first_step;
  result.steps = st.global_step;
  if (auto last = latest_checkpoint(out)) result.adapter_dir = last->string();
  return result;
}

}  // namespace qsft
