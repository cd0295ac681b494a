#include "engine/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "data/dataset.h"
#include "engine/base/error.h"
#include "engine/io/safetensors.h"
#include "engine/model/qwen2.h"
#include "engine/train/adamw.h"
#include "engine/train/checkpoint.h"
#include "engine/train/lr_schedule.h"
#include "engine/train/metrics.h"
#include "engine/train/plan.h"
#include "engine/train/progress.h"
#include "engine/train/run_dir.h"
#include "engine/train/step_planner.h"
#include "engine/train/stop_signals.h"
#include "kernels/rng.h"

namespace qsft {

namespace fs = std::filesystem;

namespace {

std::unique_ptr<Ops> choose_backend(const std::string& device) {
  if (device == "cpu") return make_cpu_ops();
  if (device == "cuda" || cuda_available()) return make_cuda_ops();
  return make_cpu_ops();
}

// config.json, checked to cover every layer the weights hold.
Qwen2Config load_model_config(const std::string& model_dir) {
  const Qwen2Config c = Qwen2Config::load(model_dir);
  c.check_layers(TensorStore::open_dir(model_dir).names(), (fs::path(model_dir) / "config.json").string());
  return c;
}

PreparedData load_data(const TrainConfig& cfg, bool show_progress) {
  PreparedData data = prepare_data(run_data_config(cfg), cfg.model, show_progress);
  if (data.train.size() == 0) throw input_error(cfg.config_path.string(), "the training data has no sequences");
  if (show_progress) std::fprintf(stderr, "%s", data.stats.report().c_str());
  return data;
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

// One run of the loop: state set up (fresh or resumed), then per step: update, log, eval, save.
class Trainer {
 public:
  Trainer(const TrainConfig& cfg, bool show_progress)
      : cfg_(cfg),
        T_(cfg.training),
        run_dir_(cfg),
        out_(run_dir_.path()),
        ops_(choose_backend(cfg.device)),
        mcfg_(load_model_config(cfg.model)),
        data_(load_data(cfg, show_progress)),
        planner_(data_.train, cfg),
        total_(total_steps()),
        sched_{T_.lr_scheduler_type, T_.learning_rate, warmup_steps_for(T_.warmup_steps, T_.warmup_ratio, total_),
               total_},
        model_(*ops_, mcfg_, cfg.lora, model_options(cfg)),
        opt_(*ops_, model_.param_layout().num_params(), cfg.full_finetuning ? model_.full_layout().decay_end() : -1),
        progress_(total_, show_progress) {
    model_.load_weights(cfg.model);
  }

  TrainResult run() {
    resume_or_init();
    t0_ = std::chrono::steady_clock::now();
    const int64_t first_step = st_.global_step;
    int64_t saved_step = first_step;  // the newest checkpoint's (or the start's) step
    for (int64_t s = st_.global_step; s < total_ && !signals_.received(); ++s) {
      step(s);
      if (s == first_step && ops_->profiling()) ops_->profile_reset();  // steady state: the first step warms up
      const bool last = st_.global_step == total_;
      if (st_.global_step % std::max<int64_t>(cfg_.logging_steps, 1) == 0 || last) log(s);
      if (data_.eval.size() > 0 && ((cfg_.eval_steps > 0 && st_.global_step % cfg_.eval_steps == 0) || last)) eval(s);
      if ((cfg_.save_steps > 0 && st_.global_step % cfg_.save_steps == 0) || last) {
        save();
        saved_step = st_.global_step;
      }
    }
    if (st_.global_step < total_) {  // stopped by a signal: keep the steps done
      if (st_.global_step > saved_step) save();
      result_.stopped_by_signal = signals_.received();
    }
    if (ops_->profiling())
      std::fprintf(stderr, "QSFT_PROFILE: time per op family over steps %lld..%lld (the first step excluded)\n%s",
                   (long long)first_step + 2, (long long)st_.global_step, ops_->profile_report().c_str());
    result_.steps_this_run = st_.global_step - first_step;
    result_.steps = st_.global_step;
    if (auto last = latest_checkpoint(out_)) result_.adapter_dir = last->string();
    return result_;
  }

 private:
  int64_t total_steps() {
    if (T_.max_steps > 0) return T_.max_steps;
    return int64_t(std::ceil(T_.num_train_epochs * double(planner_.steps_in_epoch(0))));
  }

  TrainedWeights trained() const {
    return cfg_.full_finetuning ? TrainedWeights(model_.full_layout()) : TrainedWeights(model_.lora_layout());
  }

  // The newest checkpoint's weights, moments and trainer state, or PEFT's initialisation (full fine-tuning: the
  // model's weights, loaded already).
  void resume_or_init() {
    const auto resume_from = latest_checkpoint(out_);
    if (resume_from) {
      const Checkpoint ck = load_checkpoint(*resume_from, trained());
      model_.set_lora_params(ck.lora);
      opt_.load(ck);
      st_ = ck.state;
    } else if (!cfg_.full_finetuning) {
      model_.set_lora_params(model_.lora_layout().init_params(T_.seed));
    }
    metrics_.emplace(out_, resume_from ? st_.global_step : -1);
    seconds_before_ = st_.train_seconds;
    progress_.line(std::string(resume_from ? "resuming from " + resume_from->string() : "training") + ": " +
                   std::to_string(total_) + " steps on " + ops_->name() + ", " +
                   std::to_string(model_.param_layout().num_params()) +
                   (cfg_.full_finetuning ? " parameters (full fine-tuning)" : " LoRA parameters"));
  }

  // Optimizer step s: forward/backward of its micro-batches with grad_scale 1/N (N = trained targets of the
  // whole step), clipping, AdamW at the schedule's rate for s.
  void step(int64_t s) {
    std::vector<PackedBatch> batches = planner_.batches(s);
    int64_t N = 0;
    for (const PackedBatch& b : batches) N += b.num_targets();
    QSFT_CHECK(N > 0, "an optimizer step without trained targets");
    model_.zero_grads();
    double loss_sum = 0;
    for (size_t i = 0; i < batches.size(); ++i) {
      const uint64_t seed = rng::hash(T_.seed, uint64_t(s) * uint64_t(T_.gradient_accumulation_steps) + i);
      const LossStats mb = model_.forward_backward(batches[i], 1.0f / float(N), seed);
      loss_sum += mb.loss_sum;
      if (mb.targets > 0) {  // TRL: the mean over micro-batches of each one's token accuracy
        st_.log_accuracy_sum += double(mb.correct) / double(mb.targets);
        st_.log_micro_batches += 1;
      }
      tokens_this_run_ += batches[i].num_tokens();
      st_.num_tokens += batches[i].num_tokens();
    }
    const double loss = loss_sum / double(N);
    grad_norm_ = clip_grad_norm(*ops_, model_.lora_grad_tensor(), T_.max_grad_norm);
    lr_ = sched_.at(s);
    if (!std::isfinite(loss) || !std::isfinite(grad_norm_))
      diverged(s, "loss " + std::to_string(loss) + ", gradient norm " + std::to_string(grad_norm_));
    opt_.step(model_.lora_param_tensor(), model_.lora_grad_tensor(), T_.adamw, lr_);
    if (!std::isfinite(ops_->sum_squares(model_.lora_param_tensor())))
      diverged(s, "the updated weights are not finite");
    st_.global_step = s + 1;
    st_.log_loss_sum += loss;
    st_.log_steps += 1;
    progress_.update(st_.global_step, loss, tokens_per_second(), elapsed());
  }

  // The logging window's means (loss, TRL's token accuracy) to metrics and the terminal; a new window starts.
  void log(int64_t s) {
    const double mean = st_.log_loss_sum / double(st_.log_steps);
    const double accuracy = st_.log_accuracy_sum / double(std::max<int64_t>(st_.log_micro_batches, 1));
    const double tok_s = tokens_per_second();
    metrics_->log(st_.global_step, {{"epoch", planner_.epoch_progress(s)},
                                    {"loss", mean},
                                    {"grad_norm", grad_norm_},
                                    {"learning_rate", lr_},
                                    {"num_tokens", double(st_.num_tokens)},
                                    {"mean_token_accuracy", accuracy},
                                    {"tokens_per_second", tok_s}});
    char text[200];
    std::snprintf(text, sizeof text, "step %lld/%lld  loss %.4f  grad_norm %.4f  lr %.3g  %.0f tok/s",
                  (long long)st_.global_step, (long long)total_, mean, grad_norm_, lr_, tok_s);
    progress_.line(text);
    result_.final_loss = mean;
    st_.log_loss_sum = st_.log_accuracy_sum = 0;
    st_.log_steps = st_.log_micro_batches = 0;
  }

  void eval(int64_t s) {
    const EvalResult ev = evaluate(model_, data_.eval, cfg_);
    metrics_->log(st_.global_step,
                  {{"epoch", planner_.epoch_progress(s)}, {"eval_loss", ev.loss}, {"eval_accuracy", ev.accuracy}});
    char text[160];
    std::snprintf(text, sizeof text, "step %lld  eval_loss %.4f  eval_accuracy %.4f", (long long)st_.global_step,
                  ev.loss, ev.accuracy);
    progress_.line(text);
    result_.eval_loss = ev.loss;
  }

  // A checkpoint of the state after the last step; never of a non-finite one.
  void save() {
    st_.train_seconds = seconds_before_ + elapsed();
    Checkpoint ck{st_, model_.lora_params(), {}, {}};
    opt_.save(ck);
    for (const std::vector<float>* v : {&ck.lora, &ck.exp_avg, &ck.exp_avg_sq})
      if (!std::all_of(v->begin(), v->end(), [](float x) { return std::isfinite(x); }))
        diverged(st_.global_step - 1, "the trained weights or the AdamW moments are not finite");
    save_checkpoint(out_, trained(), ck, cfg_.model, cfg_.save_total_limit);
  }

  // Stops the run at step s (0-based), where `what` went NaN or infinite, before anything of it is logged or saved.
  [[noreturn]] void diverged(int64_t s, const std::string& what) const {
    const auto kept = latest_checkpoint(out_);
    char rate[32];
    std::snprintf(rate, sizeof rate, "%g", T_.learning_rate);
    throw input_error(cfg_.config_path.string(),
                      "training diverged at step " + std::to_string(s + 1) + " (" + what +
                          "); stopped without saving that state (" +
                          (kept ? "the last checkpoint is " + kept->string() : std::string("no checkpoint yet")) +
                          "). Lower training.learning_rate (now " + rate + ") or set training.max_grad_norm");
  }

  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }
  double tokens_per_second() const { return double(tokens_this_run_) / std::max(elapsed(), 1e-9); }

  const TrainConfig& cfg_;
  const TrainingOptions& T_;
  const StopSignals signals_;  // first: a signal during data preparation stops the run before its first step
  const RunDir run_dir_;
  const fs::path out_;
  std::unique_ptr<Ops> ops_;
  const Qwen2Config mcfg_;
  const PreparedData data_;
  StepPlanner planner_;
  const int64_t total_;
  const LrSchedule sched_;
  Qwen2Model model_;
  AdamWOptimizer opt_;
  Progress progress_;
  std::optional<MetricsLog> metrics_;
  TrainerState st_;
  TrainResult result_;
  std::chrono::steady_clock::time_point t0_;
  double seconds_before_ = 0;
  int64_t tokens_this_run_ = 0;
  double grad_norm_ = 0, lr_ = 0;  // of the last step
};

}  // namespace

TrainResult train(const TrainConfig& cfg, bool show_progress) { return Trainer(cfg, show_progress).run(); }

}  // namespace qsft
