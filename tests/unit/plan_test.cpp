// `qwen-sft plan`: the planned memory equals what the model's arenas allocate, with and without recompute.
#include "engine/train/plan.h"
#include "engine/train/adamw.h"
#include "fixture.h"

namespace qsft::test {
namespace {

TEST(Plan, EqualsWhatTheArenasAllocate) {
  QSFT_REQUIRE_FIXTURE("untied");
  const Fixture f = load_fixture("untied");
  auto ops = make_cpu_ops();
  for (bool recompute : {false, true}) {
    ModelOptions opts;
    opts.max_tokens = 300;
    opts.recompute = recompute;
    const ModelMemory planned = Qwen2Model::plan_memory(f.config, f.lora, opts, Device::CPU);
    const ModelMemory real = Qwen2Model(*ops, f.config, f.lora, opts).allocated();
    EXPECT_EQ(planned.weights, real.weights);
    EXPECT_EQ(planned.lora, real.lora);
    EXPECT_EQ(planned.activations, real.activations) << "recompute " << recompute;
    EXPECT_GT(planned.activations, 0u);
  }
  ModelOptions keep, recompute;
  keep.max_tokens = recompute.max_tokens = 300;
  recompute.recompute = true;
  EXPECT_LT(Qwen2Model::plan_memory(f.config, f.lora, recompute, Device::CPU).activations,
            Qwen2Model::plan_memory(f.config, f.lora, keep, Device::CPU).activations);
  // bf16 on cuda: frozen weights take half the bytes of the fp32 reference.
  const ModelMemory cuda = Qwen2Model::plan_memory(f.config, f.lora, keep, Device::CUDA);
  EXPECT_NEAR(double(cuda.weights), double(Qwen2Model::plan_memory(f.config, f.lora, keep, Device::CPU).weights) / 2,
              4096.0);
}

TEST(Plan, TrainingPlanAddsTheOptimizerAndSaysWhetherItFits) {
  QSFT_REQUIRE_FIXTURE("tied");
  TrainConfig cfg = parse_train_config(R"({"model": "model", "data": {"train_files": ["x.jsonl"], "max_length": 64},
                                           "output_dir": "o", "training": {"per_device_train_batch_size": 2},
                                           "finetuning_type": "lora"})",
                                       repo_testdata() / "fixtures" / "tied" / "cfg.json");
  const TrainingPlan p = plan_training(cfg, Device::CPU, size_t(1) << 30);
  const LoraLayout layout(Qwen2Config::load(cfg.model), cfg.lora);
  EXPECT_EQ(p.optimizer, AdamWOptimizer::bytes(layout.num_params()));
  EXPECT_EQ(p.total(), p.model.weights + p.model.lora + p.model.activations + p.optimizer);
  EXPECT_TRUE(p.fits());
  EXPECT_FALSE(plan_training(cfg, Device::CPU, 1024).fits());
  EXPECT_NE(p.report().find("fits"), std::string::npos);
}

// The host holds the mapped safetensors files while the weights are converted (on cpu on top of the model itself);
// the advice to turn on gradient_checkpointing is given only when it is off.
TEST(Plan, CountsTheMappedWeightFilesOnTheHost) {
  namespace fs = std::filesystem;
  QSFT_REQUIRE_FIXTURE("untied");
  const fs::path cfg_path = repo_testdata() / "fixtures" / "untied" / "cfg.json";
  TrainConfig cfg = parse_train_config(R"({"model": "model", "data": {"train_files": ["x.jsonl"], "max_length": 64},
                                           "output_dir": "o", "training": {"per_device_train_batch_size": 2}})",
                                       cfg_path);
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(cfg.model))
    if (e.path().extension() == ".safetensors") files += e.file_size();
  const TrainingPlan p = plan_training(cfg, Device::CPU, size_t(1) << 30);
  EXPECT_GT(files, 0u);
  EXPECT_EQ(p.mapped_weights, files);  // three shards
  EXPECT_EQ(p.host_total(), p.total() + files);
  EXPECT_FALSE(plan_training(cfg, Device::CPU, p.total()).fits());  // the model fits, the mapped files do not
  EXPECT_TRUE(plan_training(cfg, Device::CPU, p.host_total()).fits());
  EXPECT_NE(p.report().find("host peak"), std::string::npos) << p.report();

  const std::string off = plan_training(cfg, Device::CPU, 1024).report();
  EXPECT_NE(off.find("turn on gradient_checkpointing"), std::string::npos) << off;
  cfg.training.gradient_checkpointing = true;
  const std::string on = plan_training(cfg, Device::CPU, 1024).report();
  EXPECT_NE(on.find("DOES NOT FIT"), std::string::npos) << on;
  EXPECT_EQ(on.find("gradient_checkpointing"), std::string::npos) << on;
}

// Full fine-tuning (no lora section): every weight is a trainable parameter (F32 master + grads, on cuda also the
// bf16 compute copy), the frozen weights are only the RoPE table, AdamW's moments cover all of them; the plan is
// what the arenas allocate.
TEST(Plan, FullFineTuningPlansEveryWeightAsTrainable) {
  QSFT_REQUIRE_FIXTURE("tied");
  TrainConfig cfg = parse_train_config(R"({"model": "model", "data": {"train_files": ["x.jsonl"], "max_length": 64},
                                           "output_dir": "o", "training": {"per_device_train_batch_size": 2}})",
                                       repo_testdata() / "fixtures" / "tied" / "cfg.json");
  ASSERT_TRUE(cfg.full_finetuning);
  const Qwen2Config mcfg = Qwen2Config::load(cfg.model);
  const int64_t P = FullLayout(mcfg).num_params();
  const TrainingPlan cpu = plan_training(cfg, Device::CPU, size_t(1) << 30);
  EXPECT_EQ(cpu.optimizer, AdamWOptimizer::bytes(P));
  EXPECT_GE(cpu.model.lora, size_t(P) * 8);    // params + grads, F32
  EXPECT_LT(cpu.model.weights, size_t(4096));  // the RoPE table only
  const TrainingPlan cuda = plan_training(cfg, Device::CUDA, size_t(1) << 30);
  EXPECT_GE(cuda.model.lora, size_t(P) * 10);  // + the bf16 compute copy
  EXPECT_NE(cpu.report().find("all weights + grads"), std::string::npos);
  auto ops = make_cpu_ops();
  const ModelOptions opts = model_options(cfg);
  const ModelMemory real = Qwen2Model(*ops, mcfg, cfg.lora, opts).allocated();
  EXPECT_EQ(cpu.model.lora, real.lora);
  EXPECT_EQ(cpu.model.weights, real.weights);
  EXPECT_EQ(cpu.model.activations, real.activations);
}

}  // namespace
}  // namespace qsft::test
