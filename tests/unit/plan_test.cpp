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
  for (int recompute : {0, 2, -1}) {  // none, layers 0-1, all
    ModelOptions opts;
    opts.max_tokens = 300;
    opts.recompute = recompute != 0;
    opts.recompute_layers = recompute;
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
  // ZeRO-1: 4 ranks hold a quarter of the moments each; nothing else changes.
  const TrainingPlan p4 = plan_training(cfg, Device::CPU, size_t(1) << 30, 4);
  EXPECT_EQ(p4.optimizer, AdamWOptimizer::bytes((layout.num_params() + 3) / 4));
  EXPECT_LT(p4.optimizer * 3, p.optimizer);
  EXPECT_EQ(p4.total() - p4.optimizer, p.total() - p.optimizer);
  EXPECT_NE(p4.report().find("per rank of 4"), std::string::npos) << p4.report();
}

// optim "adamw_8bit": one byte per parameter and moment plus an fp32 absmax per 256 and the two 256-entry maps,
// about a quarter of the fp32 moments; the optimizer allocates exactly what the plan counts.
TEST(Plan, CountsTheSmallerAdamW8bitState) {
  QSFT_REQUIRE_FIXTURE("tied");
  TrainConfig cfg = parse_train_config(R"({"model": "model", "data": {"train_files": ["x.jsonl"], "max_length": 64},
                                           "output_dir": "o", "training": {"optim": "adamw_8bit"},
                                           "finetuning_type": "lora"})",
                                       repo_testdata() / "fixtures" / "tied" / "cfg.json");
  const int64_t P = LoraLayout(Qwen2Config::load(cfg.model), cfg.lora).num_params(), B = (P + 255) / 256;
  auto aligned = [](int64_t bytes) { return size_t((bytes + 255) / 256 * 256); };
  EXPECT_EQ(plan_training(cfg, Device::CPU, size_t(1) << 30).optimizer,
            2 * aligned(P) + 2 * aligned(4 * B) + 2 * aligned(4 * 256));
  const int64_t big = int64_t(1) << 26;
  EXPECT_NEAR(double(AdamWOptimizer::bytes(big, "adamw_8bit")) / double(AdamWOptimizer::bytes(big)), 0.254, 0.001);
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

  cfg.training.gradient_checkpointing_auto = false;
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
  const ModelOptions opts = model_options(cfg, Device::CPU, size_t(1) << 30);
  const ModelMemory real = Qwen2Model(*ops, mcfg, cfg.lora, opts).allocated();
  EXPECT_EQ(cpu.model.lora, real.lora);
  EXPECT_EQ(cpu.model.weights, real.weights);
  EXPECT_EQ(cpu.model.activations, real.activations);
}

// gradient_checkpointing "auto" (the default): every layer's activations kept when they fit (or when the memory is
// unknown), else the fewest recomputed layers that fit, all of them when nothing fits; the plan says which.
TEST(Plan, AutoCheckpointingRecomputesTheFewestLayersThatFit) {
  QSFT_REQUIRE_FIXTURE("untied");  // 3 layers
  TrainConfig cfg = parse_train_config(R"({"model": "model", "data": {"train_files": ["x.jsonl"], "max_length": 64},
                                           "output_dir": "o", "finetuning_type": "lora"})",
                                       repo_testdata() / "fixtures" / "untied" / "cfg.json");
  ASSERT_TRUE(cfg.training.gradient_checkpointing_auto);
  const TrainingPlan roomy = plan_training(cfg, Device::CPU, size_t(1) << 50);
  EXPECT_EQ(roomy.recomputed_layers, 0);
  EXPECT_NE(roomy.report().find("auto: keeps the activations of all 3 layers"), std::string::npos) << roomy.report();
  // Exactly enough for every layer: nothing recomputed. One byte less: recomputing layer 0 alone saves nothing
  // (the recomputed layers share one set of activations), so layers 0-1.
  EXPECT_EQ(plan_training(cfg, Device::CPU, roomy.host_total()).recomputed_layers, 0);
  const TrainingPlan tight = plan_training(cfg, Device::CPU, roomy.host_total() - 1);
  EXPECT_EQ(tight.recomputed_layers, 2);
  EXPECT_TRUE(tight.fits());
  EXPECT_LT(tight.model.activations, roomy.model.activations);
  EXPECT_NE(tight.report().find("auto: recomputes layers 0-1 (2 of 3) in the backward to fit"), std::string::npos)
      << tight.report();
  const TrainingPlan none = plan_training(cfg, Device::CPU, 1024);
  EXPECT_EQ(none.recomputed_layers, 3);
  EXPECT_FALSE(none.fits());
  EXPECT_NE(none.report().find("(3 of 3) in the backward, the most it can"), std::string::npos) << none.report();
  // The trainer's options are the plan's.
  EXPECT_EQ(model_options(cfg, Device::CPU, roomy.host_total() - 1).recomputed_layers(3), 2);
  EXPECT_FALSE(model_options(cfg, Device::CPU, 0).recompute);  // unknown memory: keep everything
  // true and false still mean every layer and none.
  cfg.training.gradient_checkpointing_auto = false;
  cfg.training.gradient_checkpointing = true;
  EXPECT_EQ(plan_training(cfg, Device::CPU, size_t(1) << 50).recomputed_layers, 3);
  cfg.training.gradient_checkpointing = false;
  EXPECT_EQ(plan_training(cfg, Device::CPU, 1024).recomputed_layers, 0);
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
