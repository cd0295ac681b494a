// `qwen-sft plan`: the planned memory equals what the backend allocates (the model's arenas, the optimizer, the
// backend's own scratch), with and without recompute, LoRA, QLoRA and full fine-tuning, one rank of two.
#include "engine/train/plan.h"
#include "engine/io/random_model.h"
#include "engine/train/adamw.h"
#include "fixture.h"
#include "plan_step.h"

#include <cstdio>
#include <fstream>

namespace qsft::test {
namespace {

// The backend of the current case, for the device_used hook of bytes_after_a_step (a plain function pointer).
Ops* hooked_ops = nullptr;
size_t hooked_bytes_held() { return hooked_ops->bytes_held(); }

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

// Every device byte the engine allocates on the cpu backend is in the plan, and nothing else: the configurations
// differ in what they carve (kept or recomputed layers, LoRA or every weight trainable, 4-bit weights and their
// dequantization scratch, the 8-bit moments, a ZeRO-1 shard, Qwen3's head norms). The host-mapped embedding (an
// untied model's, frozen, unless "embedding_on_host": false) is what the backend holds of host memory.
TEST(Plan, EqualsWhatTheBackendHoldsAfterAStep) {
  namespace fs = std::filesystem;
  QSFT_REQUIRE_FIXTURE("untied");
  QSFT_REQUIRE_FIXTURE("qwen3");
  const ScopedTempDir dir("plan_held");
  fs::create_directories(dir / "model");
  Qwen2Config tiny = find_preset("tiny").config;  // H 128, I 384: whole blocks of 64 for the 4-bit weights
  tiny.vocab_size = 512;
  tiny.tie_word_embeddings = false;  // QLoRA with the embedding in host memory
  std::ofstream(dir / "model" / "config.json") << tiny.to_json();
  struct Case {
    const char* name;
    const char* fixture;  // or "" for the tiny preset (no weights needed: the arenas are zeroed)
    int world_size = 1;
    size_t less = 0;  // plan against host_total() - less bytes (gradient_checkpointing "auto"), else ample
  };
  const char* lora = R"({"model": "model", "data": {"train_files": ["x.jsonl"], "max_length": 64},
      "output_dir": "o", "finetuning_type": "lora", "lora": {"r": 4, "lora_dropout": 0.1},
      "training": {"per_device_train_batch_size": 2, "gradient_checkpointing": %s, "optim": "%s"}%s})";
  auto cfg_json = [&](const char* ckpt, const char* optim, const char* extra) {
    char buf[1024];
    std::snprintf(buf, sizeof buf, lora, ckpt, optim, extra);
    return std::string(buf);
  };
  const std::string qlora = R"(, "quantization": {"load_in_4bit": true, "bnb_4bit_use_double_quant": true})";
  std::string on_device = cfg_json("false", "adamw_torch", "");
  on_device.replace(on_device.find("\"optim\""), 0, "\"embedding_on_host\": false, ");
  const std::string full = R"({"model": "model", "data": {"train_files": ["x.jsonl"], "max_length": 48},
      "output_dir": "o", "training": {"gradient_checkpointing": false}})";
  const std::vector<std::pair<Case, std::string>> cases = {
      {{"lora, activations kept", "untied"}, cfg_json("false", "adamw_torch", "")},
      {{"lora, embedding on the device", "untied"}, on_device},
      {{"lora, every layer recomputed", "untied"}, cfg_json("true", "adamw_torch", "")},
      {{"lora, auto recomputes layers 0-1", "untied", 1, 1}, cfg_json("\"auto\"", "adamw_torch", "")},
      {{"lora, adamw_8bit", "untied"}, cfg_json("false", "adamw_8bit", "")},
      {{"lora, rank 0 of 2", "untied", 2}, cfg_json("false", "adamw_torch", "")},
      {{"qwen3 lora, recomputed", "qwen3"}, cfg_json("true", "adamw_torch", "")},
      {{"qlora nf4 tiny", ""}, cfg_json("false", "adamw_torch", qlora.c_str())},
      {{"qlora nf4 tiny, recomputed", ""}, cfg_json("true", "adamw_torch", qlora.c_str())},
      {{"full fine-tuning", "untied"}, full},
  };
  for (const auto& [c, json] : cases) {
    auto ops = make_cpu_ops();
    const fs::path base = *c.fixture ? repo_testdata() / "fixtures" / c.fixture / "cfg.json" : dir / "cfg.json";
    const TrainConfig cfg = parse_train_config(json, base);
    size_t available = size_t(1) << 50;
    if (c.less) available = plan_training(cfg, Device::CPU, available, c.world_size).host_total() - c.less;
    const TrainingPlan p = plan_training(cfg, Device::CPU, available, c.world_size);
    if (c.less) {
      EXPECT_GT(p.recomputed_layers, 0) << c.name;
    }
    hooked_ops = ops.get();
    const HeldBytes held = bytes_after_a_step(*ops, cfg, available, c.world_size, hooked_bytes_held);
    EXPECT_EQ(held.device, p.allocated()) << c.name << "\n" << p.report();
    EXPECT_EQ(held.used, held.device) << c.name << ": the device_used hook runs while the step's state is alive";
    EXPECT_EQ(held.host, p.model.host_weights) << c.name;
    const bool untied = !Qwen2Config::load(cfg.model).tie_word_embeddings;
    EXPECT_EQ(p.model.host_weights > 0, untied && !cfg.full_finetuning && cfg.training.embedding_on_host) << c.name;
    EXPECT_EQ(p.total(), p.allocated()) << c.name;  // no CUDA context on the cpu
    EXPECT_EQ(ops->bytes_held(), p.weight_scratch) << c.name << ": all freed but the backend's own buffer";
  }
}

// On cuda the plan adds what only a GPU holds: the CUDA context (an estimate), the cuBLASLt workspace and the
// kernels' scratch; the cross-entropy's logits chunk is lent from the backward scratch, so it adds nothing
// (tests/gpu/gpu_plan_test.cpp checks the allocations on a GPU).
TEST(Plan, CudaAddsTheContextWorkspaceAndKernelScratch) {
  QSFT_REQUIRE_FIXTURE("untied");
  TrainConfig cfg = parse_train_config(R"({"model": "model", "data": {"train_files": ["x.jsonl"], "max_length": 64},
                                           "output_dir": "o", "finetuning_type": "lora",
                                           "training": {"gradient_checkpointing": false}})",
                                       repo_testdata() / "fixtures" / "untied" / "cfg.json");
  const TrainingPlan g = plan_training(cfg, Device::CUDA, size_t(1) << 40, 2);
  EXPECT_EQ(g.context, kCudaContextBytes);
  EXPECT_EQ(g.gemm_workspace, kCudaScratchBytes);
  EXPECT_EQ(g.comm_scratch, kNcclScratchBytes);
  EXPECT_GT(g.kernel_scratch, 0u);
  EXPECT_GT(g.comm_buffers, 0u);  // NCCL's own buffers with 2 ranks: on the GPU, not held by the backend
  EXPECT_EQ(g.total(), g.allocated() + kCudaContextBytes + g.comm_buffers);
  EXPECT_EQ(plan_training(cfg, Device::CUDA, size_t(1) << 40, 1).comm_buffers, 0u);
  EXPECT_GT(g.loss_scratch, 0u);
  EXPECT_GE(g.model.state.scratch, g.loss_scratch);  // lent: the backward scratch is at least that large
  const std::string r = g.report();
  for (const char* line : {"CUDA context", "NCCL buffers", "cuBLASLt workspace", "of which the CE logits chunk", "residual streams",
                           "saved layer activations", "backward scratch", "checkpoint staging"})
    EXPECT_NE(r.find(line), std::string::npos) << line << "\n" << r;
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

// The host holds the mapped safetensors files while the weights are converted, and a checkpoint's state while it is
// saved (on cpu on top of the model itself);
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
  // Saving a checkpoint stages the parameters and both moments on the host (full fine-tuning: every weight, F32).
  EXPECT_EQ(p.checkpoint_staging, size_t(FullLayout(Qwen2Config::load(cfg.model)).num_params()) * 12);
  EXPECT_EQ(p.host_total(), p.total() + std::max(files, p.checkpoint_staging));
  EXPECT_FALSE(plan_training(cfg, Device::CPU, p.total()).fits());  // the model fits, loading or saving does not
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
// checkpointing, on cuda, the CUDA context included: the issue's budgets for Qwen2.5 7B, 14B and 72B (the presets
// carry their real configs), in GiB (an "8 GB" card has 8 GiB), with the QLoRA recipe's 8-bit AdamW and with fp32
// moments (adamw_torch). The untied bf16 embedding is in host memory (a host line), not on the device.
TEST(Plan, QloraFitsTheBudgetsOfItsUsers) {
  namespace fs = std::filesystem;
  const ScopedTempDir dir("plan_qlora");
  const std::string cfg_json = R"({"model": "m", "data": {"train_files": ["x.jsonl"], "max_length": 4096},
      "lora": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05}, "output_dir": "o",
      "training": {"per_device_train_batch_size": 1, "gradient_checkpointing": true, "optim": "adamw_8bit"},
      "quantization": {"load_in_4bit": true, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": true}})";
  const size_t GiB = size_t(1) << 30;
  for (auto [preset, budget] :
       {std::pair{"qwen2.5-7b", 8 * GiB}, {"qwen2.5-14b", 16 * GiB}, {"qwen2.5-72b", 80 * GiB}}) {
    fs::create_directories(dir / "m");
    std::ofstream(dir / "m" / "config.json") << find_preset(preset).config.to_json();
    const TrainConfig cfg = parse_train_config(cfg_json, dir / "cfg.json");
    const TrainingPlan q = plan_training(cfg, Device::CUDA, budget);
    TrainConfig fp32_moments = cfg, dense = cfg;
    fp32_moments.training.optim = "adamw_torch";
    dense.quant.load_in_4bit = false;
    const TrainingPlan t = plan_training(fp32_moments, Device::CUDA, budget);
    const TrainingPlan d = plan_training(dense, Device::CUDA, 200 * GiB);
    TrainConfig on_device = fp32_moments;
    on_device.training.embedding_on_host = false;
    const TrainingPlan e = plan_training(on_device, Device::CUDA, 200 * GiB);
    std::printf(
        "%s QLoRA r16 4096 tokens: %.3f GiB (adamw_torch %.3f GiB, %.3f with the embedding on the device; weights "
        "%.3f GiB + %.3f in host memory; bf16 base %.3f GiB)\n",
        preset, double(q.total()) / double(GiB), double(t.total()) / double(GiB), double(e.total()) / double(GiB),
        double(q.model.weights) / double(GiB), double(q.model.host_weights) / double(GiB),
        double(d.model.weights) / double(GiB));
    EXPECT_TRUE(q.fits()) << preset << "\n" << q.report();
    EXPECT_LE(q.total(), budget) << preset;
    EXPECT_TRUE(t.fits()) << preset << "\n" << t.report();
    EXPECT_LE(t.total(), budget) << preset;
    const Qwen2Config& m = find_preset(preset).config;
    EXPECT_EQ(q.model.host_weights, size_t(m.vocab_size * m.hidden_size) * 2) << preset;  // bf16 [V, H]
    EXPECT_EQ(e.model.host_weights, 0u) << preset;
    EXPECT_EQ(e.model.weights, t.model.weights + t.model.host_weights) << preset;
    EXPECT_EQ(q.host_total(), std::max(q.mapped_weights, q.checkpoint_staging) + q.model.host_weights) << preset;
    EXPECT_NE(q.report().find("embedding, host-mapped"), std::string::npos) << q.report();
    // 4-bit codes plus one byte of absmax per 64 weights: under 0.3 of the bf16 Linear weights.
    EXPECT_LT(q.model.weights, d.model.weights * 4 / 10) << preset;
    EXPECT_GT(q.weight_scratch, 0u) << preset;  // one chunk of a 4-bit weight, dequantized
    EXPECT_LE(q.weight_scratch, kCudaWeightScratchBytes) << preset;
    EXPECT_EQ(d.weight_scratch, 0u) << preset;
  }
}

}  // namespace
}  // namespace qsft::test
