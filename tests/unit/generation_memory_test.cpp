// Generation's device memory is sized for inference only (generation_model_options): the model's run state is two
// residual streams and one layer's activations whatever the depth, with no backward scratch, and an unmerged
// adapter carries no gradients. Planned bytes equal what the arenas allocate. Prints the qwen2.5-0.5b preset's
// bytes (bf16 as on the GPU, the default 8 slots x 2048 positions, a rank-16 all-linear adapter) with the run state
// a training model would have (what generation allocated before) and the inference one.
#include <cstdio>

#include "engine/generate/generator.h"
#include "engine/io/random_model.h"
#include "fixture.h"

namespace qsft::test {
namespace {

LoraConfig all_linear(int r) {
  LoraConfig l;
  l.r = r;
  l.set_targets({"all-linear"}, "test");
  return l;
}

double mib(size_t bytes) { return double(bytes) / 1048576.0; }

TEST(GenerationMemory, RunStateDoesNotGrowWithDepthAndAdaptersHaveNoGradients) {
  Qwen2Config cfg = find_preset("qwen2.5-0.5b").config;
  cfg.vocab_size = 151936;
  const GeneratorOptions o;
  const LoraConfig lora = all_linear(16);
  const ModelOptions gen = generation_model_options(o);
  ModelOptions trained = gen;
  trained.inference = false;
  const ModelMemory deep = Qwen2Model::plan_memory(cfg, lora, gen, Device::CUDA);
  const ModelMemory before = Qwen2Model::plan_memory(cfg, lora, trained, Device::CUDA);
  const size_t cache = Generator::plan_bytes(cfg, o, DType::BF16);
  std::printf("qwen2.5-0.5b generation (8 x 2048, r=16 unmerged, bf16): weights %.1f MiB, adapter %.1f MiB (was %.1f), "
              "run state %.1f MiB (was %.1f), KV cache and step buffers %.1f MiB; total %.1f MiB (was %.1f)\n",
              mib(deep.weights), mib(deep.lora), mib(before.lora), mib(deep.activations), mib(before.activations),
              mib(cache), mib(deep.weights + deep.lora + deep.activations + cache),
              mib(before.weights + before.lora + before.activations + cache));
  Qwen2Config shallow = cfg;
  shallow.num_hidden_layers = 2;
  EXPECT_EQ(Qwen2Model::plan_memory(shallow, lora, gen, Device::CUDA).activations, deep.activations);
  const int64_t P = LoraLayout(cfg, lora).num_params();  // the gradients: F32 [P]
  EXPECT_EQ(before.lora - deep.lora, (size_t(P) * 4 + Arena::kAlign - 1) / Arena::kAlign * Arena::kAlign);
  EXPECT_EQ(before.weights, deep.weights);
}

TEST(GenerationMemory, PlannedEqualsAllocated) {
  QSFT_REQUIRE_FIXTURE("untied");
  const Fixture f = load_fixture("untied");
  auto ops = make_cpu_ops();
  GeneratorOptions o;
  o.slots = 3;
  o.capacity = 40;
  const ModelOptions m = generation_model_options(o);
  const ModelMemory planned = Qwen2Model::plan_memory(f.config, f.lora, m, Device::CPU);
  Qwen2Model model(*ops, f.config, f.lora, m);
  const ModelMemory real = model.allocated();
  EXPECT_EQ(planned.weights, real.weights);
  EXPECT_EQ(planned.lora, real.lora);
  EXPECT_EQ(planned.activations, real.activations);
  EXPECT_EQ(Generator(*ops, model, o).bytes(), Generator::plan_bytes(f.config, o, DType::F32));
}

}  // namespace
}  // namespace qsft::test
