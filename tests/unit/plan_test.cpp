// `qwen-sft plan`: the planned memory equals what the model's arenas allocate, with and without recompute.
#include "engine/train/plan.h"
#include "engine/io/random_model.h"
#include "engine/train/adamw.h"
#include "fixture.h"

#include <cstdio>
#include <fstream>

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
                                           "output_dir": "o", "training": {"per_device_train_batch_size": 2}})",
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

// QLoRA (docs/qlora.md): LoRA r16 over an NF4 double-quantized base, 4096 tokens a micro-batch, gradient
// checkpointing, on cuda: the issue's budgets for Qwen2.5 7B, 14B and 72B (the presets carry their real configs).
TEST(Plan, QloraFitsTheBudgetsOfItsUsers) {
  namespace fs = std::filesystem;
  const fs::path dir = fresh_temp_dir("plan_qlora");
  const std::string cfg_json = R"({"model": "m", "data": {"train_files": ["x.jsonl"], "max_length": 4096},
      "lora": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05}, "output_dir": "o",
      "training": {"per_device_train_batch_size": 1, "gradient_checkpointing": true},
      "quantization": {"load_in_4bit": true, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": true}})";
  const size_t GiB = size_t(1) << 30;
  for (auto [preset, budget] :
       {std::pair{"qwen2.5-7b", 8 * GiB}, {"qwen2.5-14b", 16 * GiB}, {"qwen2.5-72b", 80 * GiB}}) {
    fs::create_directories(dir / "m");
    std::ofstream(dir / "m" / "config.json") << find_preset(preset).config.to_json();
    const TrainConfig cfg = parse_train_config(cfg_json, dir / "cfg.json");
    const TrainingPlan q = plan_training(cfg, Device::CUDA, 80 * GiB);
    TrainConfig dense = cfg;
    dense.quant.load_in_4bit = false;
    const TrainingPlan d = plan_training(dense, Device::CUDA, 80 * GiB);
    std::printf("%s QLoRA r16 4096 tokens: %.3f GiB (weights %.3f GiB; bf16 base %.3f GiB)\n", preset,
                double(q.total()) / double(GiB), double(q.model.weights) / double(GiB),
                double(d.model.weights) / double(GiB));
    EXPECT_LE(q.total(), budget) << preset;
    // 4-bit codes plus one byte of absmax per 64 weights: under 0.3 of the bf16 Linear weights.
    EXPECT_LT(q.model.weights, d.model.weights * 4 / 10) << preset;
    EXPECT_GT(q.backend_scratch, d.backend_scratch) << preset;  // the weight scratch
    EXPECT_LE(q.backend_scratch - d.backend_scratch, kCudaWeightScratchBytes) << preset;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qsft::test
