#include "engine/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <optional>

#include "data/dataset.h"
#include "engine/base/error.h"
#include "engine/dist/comm.h"
#include "engine/dist/grad_buckets.h"
#include "engine/generate/training_samples.h"
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

// The backend, on the GPU of this rank's local rank.
std::unique_ptr<Ops> choose_backend(const std::string& device, const Launch& launch) {
  if (device == "cpu") return make_cpu_ops();
  if (device == "cuda" || cuda_available()) {
    select_local_gpu(launch);
    return make_cuda_ops();
  }
  return make_cpu_ops();
}

// output_dir opened and locked by rank 0 (the others use it after the barrier: it exists, with no dead writes).
// The run's Comm; its shard maps start on adamw_8bit's blocks when that is the optimizer.
std::unique_ptr<Comm> make_run_comm(const Launch& l, Ops& ops, const std::string& optim) {
  std::unique_ptr<Comm> c = make_comm(l, ops);
  c->align_shards(AdamWOptimizer::shard_alignment(optim));
  return c;
}

std::unique_ptr<RunDir> open_run_dir(const TrainConfig& cfg, Comm& comm) {
  std::unique_ptr<RunDir> dir = comm.rank() == 0 ? std::make_unique<RunDir>(cfg) : nullptr;
  comm.barrier();
  return dir;
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

// Eval sharded over the ranks (micro-batch i on rank i mod world), the sums reduced.
EvalResult evaluate(Qwen2Model& model, const SequenceSet& eval, const TrainConfig& c, Comm& comm) {
  double sums[3] = {0, 0, 0};  // loss, correct, targets
  const auto plan = plan_epoch(eval, c.data.max_length, c.training.per_device_train_batch_size,
                               c.training.micro_batch_tokens, c.training.seed, 0, c.data.packing);
  for (size_t i = size_t(comm.rank()); i < plan.size(); i += size_t(comm.world_size())) {
    LossStats s = model.forward_loss(make_batch(eval, plan[i]));
    sums[0] += s.loss_sum;
    sums[1] += double(s.correct);
    sums[2] += double(s.targets);
  }
  comm.all_reduce_host(sums);
  return {sums[0] / std::max(sums[2], 1.0), sums[1] / std::max(sums[2], 1.0)};
}

// What each micro-batch of a step reports, in its slot of the step: kStats doubles from slot * kStats. The
// ranks' slot vectors are summed; each slot is written by one rank, so the sums are exact and the totals are
// added in micro-batch order, as a world of one adds them.
enum MicroBatchStat { kLossSum, kAccuracy, kCounted /* 1: it had trained targets */, kTokens, kStats };

// One run of the loop: state set up (fresh or resumed), then per step: update, log, eval, save.
class Trainer {
 public:
  Trainer(const TrainConfig& cfg, bool show_progress)
      : cfg_(cfg),
        T_(cfg.training),
        launch_(detect_launch()),
        ops_(choose_backend(cfg.device, launch_)),
        comm_(make_run_comm(launch_, *ops_, cfg.training.optim)),
        run_dir_(open_run_dir(cfg, *comm_)),
        out_(cfg.output_dir),
        show_(show_progress && comm_->rank() == 0),
        mcfg_(load_model_config(cfg.model)),
        data_(load_data(cfg, show_)),
        planner_(data_.train, cfg, comm_->world_size(), comm_->rank()),
        total_(total_steps()),
        sched_(lr_schedule_for(T_, total_)),
        model_(*ops_, mcfg_, cfg.lora,
               model_options(cfg, ops_->device(), plannable_memory(*ops_), comm_->world_size())),
        opt_(*ops_, model_.param_layout().num_params(), comm_->shard(model_.param_layout().num_params()), T_.optim,
             cfg.full_finetuning ? model_.full_layout().decay_end() : -1),
        progress_(total_, show_) {
    if (const int64_t grad_bytes = model_.lora_grad_tensor().numel() * 4; use_grad_buckets(*comm_, grad_bytes))
      buckets_.emplace(*comm_, model_.lora_grad_tensor(),
                       plan_grad_buckets(model_.param_layout(), mcfg_.num_hidden_layers,
                                         int64_t(T_.ddp_bucket_cap_mb * 1024 * 1024)));
    model_.load_weights(cfg.model);
    if (!cfg.generation_prompts.empty() && comm_->rank() == 0)
      samples_.emplace(cfg.generation_prompts, cfg.model, cfg.data.chat_format,
                       model_options(cfg, ops_->device(), 0).max_tokens);
  }

  TrainResult run() {
    resume_or_init();
    t0_ = std::chrono::steady_clock::now();
    const int64_t first_step = st_.global_step;
    int64_t saved_step = first_step;  // the newest checkpoint's (or the start's) step
    for (int64_t s = st_.global_step; s < total_ && !stop_requested(); ++s) {
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
      result_.stopped_by_signal = signals_.received() ? signals_.received() : SIGTERM;  // another rank's signal
    }
    if (ops_->profiling())
      std::fprintf(
          stderr, "QSFT_PROFILE: time per op family and GEMM shape over steps %lld..%lld (the first step excluded)\n%s",
          (long long)first_step + 2, (long long)st_.global_step, ops_->profile_report().c_str());
    result_.steps_this_run = st_.global_step - first_step;
    result_.steps = st_.global_step;
    result_.rank = comm_->rank();
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
    same_start_on_every_rank(resume_from);
    if (resume_from) {
      const Checkpoint ck = load_checkpoint(*resume_from, trained());
      same_step_size(ck.state, *resume_from);
      model_.set_lora_params(ck.lora);
      opt_.load(ck);
      st_ = ck.state;
    } else if (!cfg_.full_finetuning) {
      model_.set_lora_params(model_.lora_layout().init_params(T_.seed));
    }
    if (comm_->rank() == 0) metrics_.emplace(out_, resume_from ? st_.global_step : -1);
    seconds_before_ = st_.train_seconds;
    progress_.line(std::string(resume_from ? "resuming from " + resume_from->string() : "training") + ": " +
                   std::to_string(total_) + " steps on " + ops_->name() + world() + ", " +
                   std::to_string(model_.param_layout().num_params()) +
                   (cfg_.full_finetuning ? " parameters (full fine-tuning)" : " LoRA parameters"));
  }

  std::string world() const {
    if (comm_->name() == "single") return "";
    const std::string buckets =
        buckets_ ? ", gradients reduced in " + std::to_string(buckets_->num_buckets()) + " buckets during the backward"
                 : "";
    return " x " + std::to_string(comm_->world_size()) + " ranks (" + comm_->launch().launcher + ", " + comm_->name() +
           ", optimizer sharded" + buckets + ")";
  }

  // Every rank resumes from the same step (a rank on a node that does not share output_dir would not).
  void same_start_on_every_rank(const std::optional<fs::path>& resume_from) {
    std::vector<double> steps(size_t(comm_->world_size()), 0.0);
    steps[size_t(comm_->rank())] = resume_from ? double(checkpoint_step(*resume_from)) : 0.0;
    comm_->all_reduce_host(steps);
    for (size_t r = 1; r < steps.size(); ++r)
      if (steps[r] != steps[0])
        throw input_error(out_.string(), "rank " + std::to_string(r) + " resumes from step " +
                                             std::to_string(int64_t(steps[r])) + ", rank 0 from step " +
                                             std::to_string(int64_t(steps[0])) +
                                             ": output_dir must be one folder shared by every rank");
  }

  // A resumed run keeps the checkpoint's global batch: GA x world size micro-batches per step (GA may change
  // with the world size, e.g. 2 ranks x GA 2 -> 1 rank x GA 4).
  void same_step_size(const TrainerState& before, const fs::path& checkpoint) const {
    const int64_t then = before.micro_batches_per_step, now = planner_.micro_batches_per_step();
    if (then == 0 || then == now) return;
    const int world = comm_->world_size();
    const std::string fix = then % world ? "use a world size that divides " + std::to_string(then)
                                         : "set gradient_accumulation_steps to " + std::to_string(then / world);
    throw input_error(checkpoint.string(), "trained with " + std::to_string(then) +
                                               " micro-batches per step (gradient_accumulation_steps x world size); " +
                                               "this run takes " + std::to_string(now) + ": " + fix);
  }

  // A stop signal on any rank stops every rank before the same step.
  bool stop_requested() {
    double stop = signals_.received() ? 1.0 : 0.0;
    comm_->all_reduce_host({&stop, 1});
    return stop > 0;
  }

  // Optimizer step s: forward/backward of this rank's micro-batches with grad_scale 1/N (N = trained targets of
  // the whole step, all ranks'), the gradients reduce-scattered (in buckets during the last backward, or after
  // it), clipping by the global norm, AdamW at the schedule's rate for s on this rank's shard, the parameters
  // all-gathered.
  void step(int64_t s) {
    std::vector<PackedBatch> batches = planner_.batches(s);
    const int64_t N = planner_.step_targets(s);
    QSFT_CHECK(N > 0, "an optimizer step without trained targets");
    model_.zero_grads();
    const uint64_t M = uint64_t(planner_.micro_batches_per_step());
    std::vector<double> stats(M * kStats, 0.0);
    const GradsFinalFn start_buckets = [this](int layer) { buckets_->final_from(layer); };
    for (size_t i = 0; i < batches.size(); ++i) {
      const uint64_t k = uint64_t(planner_.first_micro_batch()) + i;  // the micro-batch's place in the step
      const uint64_t seed = rng::hash(T_.seed, uint64_t(s) * M + k);
      const bool last = i + 1 == batches.size();
      const LossStats mb = model_.forward_backward(batches[i], 1.0f / float(N), seed,
                                                   buckets_ && last ? &start_buckets : nullptr);
      double* slot = &stats[k * kStats];
      slot[kLossSum] = mb.loss_sum;
      slot[kAccuracy] = mb.targets > 0 ? double(mb.correct) / double(mb.targets) : 0.0;
      slot[kCounted] = mb.targets > 0 ? 1.0 : 0.0;
      slot[kTokens] = double(batches[i].num_tokens());
    }
    reduce_grads();
    comm_->all_reduce_host(stats);
    double loss_sum = 0;
    for (uint64_t k = 0; k < M; ++k) {
      const double* slot = &stats[k * kStats];
      loss_sum += slot[kLossSum];
      if (slot[kCounted] > 0) {  // TRL: the mean over micro-batches of each one's token accuracy
        st_.log_accuracy_sum += slot[kAccuracy];
        st_.log_micro_batches += 1;
      }
      tokens_this_run_ += int64_t(slot[kTokens]);
      st_.num_tokens += int64_t(slot[kTokens]);
    }
    const double loss = loss_sum / double(N);
    Tensor& grads = model_.lora_grad_tensor();
    const ShardRange shard = comm_->shard(grads.numel());
    Tensor my_grads = grads.rows(shard.offset, shard.offset + shard.count);
    grad_norm_ = clip_grad_norm(*ops_, my_grads, T_.max_grad_norm, *comm_);
    lr_ = sched_.at(s);
    if (!std::isfinite(loss) || !std::isfinite(grad_norm_))
      diverged(s, "loss " + std::to_string(loss) + ", gradient norm " + std::to_string(grad_norm_));
    opt_.step(model_.lora_param_tensor(), grads, T_.adamw, lr_);
    comm_->all_gather(model_.lora_param_tensor());
    if (!std::isfinite(ops_->sum_squares(model_.lora_param_tensor())))
      diverged(s, "the updated weights are not finite");
    st_.global_step = s + 1;
    st_.log_loss_sum += loss;
    st_.log_steps += 1;
    progress_.update(st_.global_step, loss, tokens_per_second(), elapsed());
  }

  // The gradients summed over the ranks into this rank's shard: the buckets the last backward started (waited for
  // before any other collective: comm.h), or one reduce-scatter now.
  void reduce_grads() {
    if (buckets_)
      buckets_->finish();
    else
      comm_->reduce_scatter(model_.lora_grad_tensor());
  }

  // The logging window's means (loss, TRL's token accuracy) to metrics and the terminal; a new window starts.
  void log(int64_t s) {
    const double mean = st_.log_loss_sum / double(st_.log_steps);
    const double accuracy = st_.log_accuracy_sum / double(std::max<int64_t>(st_.log_micro_batches, 1));
    const double tok_s = tokens_per_second();
    if (metrics_)
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
    const EvalResult ev = evaluate(model_, data_.eval, cfg_, *comm_);
    if (metrics_)
      metrics_->log(st_.global_step,
                    {{"epoch", planner_.epoch_progress(s)}, {"eval_loss", ev.loss}, {"eval_accuracy", ev.accuracy}});
    char text[160];
    std::snprintf(text, sizeof text, "step %lld  eval_loss %.4f  eval_accuracy %.4f", (long long)st_.global_step,
                  ev.loss, ev.accuracy);
    progress_.line(text);
    result_.eval_loss = ev.loss;
    if (samples_) samples_->answer(*ops_, model_, st_.global_step, out_);
  }

  // A checkpoint of the state after the last step; never of a non-finite one.
  void save() {
    st_.train_seconds = seconds_before_ + elapsed();
    st_.micro_batches_per_step = planner_.micro_batches_per_step();
    Checkpoint ck;
    ck.state = st_;
    ck.lora = model_.lora_params();
    opt_.save(ck, *comm_, model_.lora_grad_tensor());  // the gradients are spent: a free buffer for the gather
    double bad = 0;                                    // rank 0 holds the whole state; its verdict is every rank's
    for (const std::vector<float>* v :
         {&ck.lora, &ck.exp_avg, &ck.exp_avg_sq, &ck.exp_avg_absmax, &ck.exp_avg_sq_absmax})
      if (!std::all_of(v->begin(), v->end(), [](float x) { return std::isfinite(x); })) bad = comm_->rank() == 0;
    comm_->all_reduce_host({&bad, 1});
    if (bad > 0) diverged(st_.global_step - 1, "the trained weights or the AdamW moments are not finite");
    if (comm_->rank() == 0) save_checkpoint(out_, trained(), ck, cfg_.model, cfg_.save_total_limit);
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
  const Launch launch_;
  std::unique_ptr<Ops> ops_;
  std::unique_ptr<Comm> comm_;
  const std::unique_ptr<RunDir> run_dir_;  // rank 0's
  const fs::path out_;
  const bool show_;  // progress and log lines: rank 0's
  const Qwen2Config mcfg_;
  const PreparedData data_;
  StepPlanner planner_;
  const int64_t total_;
  const LrSchedule sched_;
  Qwen2Model model_;
  AdamWOptimizer opt_;
  std::optional<GradReducer> buckets_;  // when they pay (use_grad_buckets); else one reduce-scatter
  Progress progress_;
  std::optional<MetricsLog> metrics_;
  std::optional<TrainingSamples> samples_;  // generation_prompts answered at each eval
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
