// The whole training step on the GPU against the CPU backend, on the tiny Hugging Face fixture models (tied and
// untied; 2 layers, H 64, 4/2 heads of 16, all seven LoRA targets, three packed sequences):
//   one forward/backward: loss within 1e-2 relative, each LoRA gradient with cosine >= kBf16StepGradCosine and
//   relative L2 error <= kBf16StepGradRelL2 (tests/gpu/gpu_test_util.h: bf16's own error on these fixtures, measured
//   with torch) (B is random here so that every A gets a gradient too);
//   the same with LoRA dropout 0.05 and r 16, every parameter random: the fused dropout path (Ops::lora_a_dropout:
//   kernels/lora_dropout.cu; Ops::lora_da_dropout) inside a step; the masks are the same on both backends
//   (kernels/rng.h); 50 AdamW steps on the fixture batch from the fixture's adapter: the loss curves track step by
//   step.
#include "tests/fixture.h"
#include "tests/gpu/gpu_test_util.h"

namespace qsft::test {
namespace {

class GpuModelStep : public ::testing::TestWithParam<const char*> {};

// The fixture's A with B drawn U(-0.05, 0.05): no gradient is identically zero.
std::vector<float> params_with_random_b(const Fixture& f, const LoraLayout& layout) {
  std::vector<float> p = f.lora_init;
  std::mt19937 rng(61);
  std::uniform_real_distribution<float> dist(-0.05f, 0.05f);
  for (const LoraSlot& s : layout.slots())
    for (int64_t i = 0; i < s.out * layout.config().r; ++i) p[size_t(s.b_offset + i)] = dist(rng);
  return p;
}

// One forward/backward of f's batch from the LoRA parameters p on both backends: the loss and every LoRA gradient.
void expect_step_matches_cpu(Ops& cpu, Ops& gpu, const Fixture& f, const std::vector<float>& p,
                             const std::string& what) {
  const int64_t T = f.batch.num_tokens();
  auto mc = make_model(cpu, f, T, false);
  auto mg = make_model(gpu, f, T, false);
  mc->set_lora_params(p);
  mg->set_lora_params(p);
  mc->zero_grads();
  mg->zero_grads();
  const float scale = 1.0f / float(f.batch.num_targets());
  const LossStats lc = mc->forward_backward(f.batch, scale, 5);
  const LossStats lg = mg->forward_backward(f.batch, scale, 5);
  const double loss_c = lc.loss_sum / double(lc.targets), loss_g = lg.loss_sum / double(lg.targets);
  std::printf("%s %s loss cpu %.6f gpu %.6f\n", measured_tag(), what.c_str(), loss_c, loss_g);
  EXPECT_LE(std::fabs(loss_g - loss_c) / loss_c, 1e-2);

  const std::vector<float> gc = mc->lora_grads(), gg = mg->lora_grads();
  const int64_t r = mc->lora_layout().config().r;
  std::pair<double, std::string> worst_cos{1.0, ""}, worst_err{0.0, ""};
  for (const LoraSlot& s : mc->lora_layout().slots())
    for (auto [off, n, which] : {std::tuple{s.a_offset, r * s.in, 'A'}, std::tuple{s.b_offset, s.out * r, 'B'}}) {
      const std::vector<float> c(gc.begin() + off, gc.begin() + off + n), g(gg.begin() + off, gg.begin() + off + n);
      const std::string key = LoraLayout::peft_key(s, which);
      const ErrorMeasures m = measure(g, c);
      print_measures(what + " grad " + key, m, "rel.L2", m.rel_l2, kBf16StepGradRelL2);
      worst_cos = std::min(worst_cos, std::pair{m.cosine, key});
      worst_err = std::max(worst_err, std::pair{m.rel_l2, key});
      EXPECT_GE(m.cosine, kBf16StepGradCosine) << key;
      EXPECT_LE(m.rel_l2, kBf16StepGradRelL2) << key;
    }
  std::printf("%s %s LoRA gradients: worst cosine %.6f (%s), worst rel. L2 error %.2e (%s)\n", measured_tag(),
              what.c_str(), worst_cos.first, worst_cos.second.c_str(), worst_err.first, worst_err.second.c_str());
}

TEST_P(GpuModelStep, OneStepLossAndLoraGradientsMatchCpu) {
  QSFT_REQUIRE_GPU();
  QSFT_REQUIRE_FIXTURE(GetParam());
  const Fixture f = load_fixture(GetParam());
  expect_step_matches_cpu(*cpu, *gpu, f, params_with_random_b(f, LoraLayout(f.config, f.lora)), GetParam());
}

// r 16 and lora_dropout 0.05: the step's LoRA stacks run the fused kernels (Ops::lora_a_dropout, lora_da_dropout:
// BF16, in a multiple of 8, r of 16, n r <= 192); A and B drawn U(-0.1, 0.1). The same
// tolerances hold here: bf16_grad_noise.py's dropout case (torch bf16 vs float64, same masks) measured worst rel.
// L2 3.8e-2 and cosine 0.99927 over 5 draws on each fixture, inside the no-dropout case's 5.0e-2 and 0.99877.
TEST_P(GpuModelStep, DropoutR16OneStepMatchesCpu) {
  QSFT_REQUIRE_GPU();
  QSFT_REQUIRE_FIXTURE(GetParam());
  Fixture f = load_fixture(GetParam());
  f.lora.r = 16;
  f.lora.dropout = 0.05f;
  f.lora_init = hashed_uniform(size_t(LoraLayout(f.config, f.lora).num_params()), 63, -0.1f, 0.1f);
  expect_step_matches_cpu(*cpu, *gpu, f, f.lora_init, std::string(GetParam()) + " dropout 0.05 r16");
}

TEST_P(GpuModelStep, FiftyStepLossCurveTracksCpu) {
  QSFT_REQUIRE_GPU();
  QSFT_REQUIRE_FIXTURE(GetParam());
  const Fixture f = load_fixture(GetParam());
  const int64_t T = f.batch.num_tokens();
  struct Run {
    std::unique_ptr<Qwen2Model> model;
    std::unique_ptr<AdamWOptimizer> opt;
    std::vector<double> losses;
  };
  Run runs[2];
  Ops* backends[2] = {cpu.get(), gpu.get()};
  for (int b = 0; b < 2; ++b) {
    runs[b].model = make_model(*backends[b], f, T, false);
    runs[b].opt = std::make_unique<AdamWOptimizer>(*backends[b], runs[b].model->lora_layout().num_params());
  }
  const float scale = 1.0f / float(f.batch.num_targets());
  for (int step = 0; step < 50; ++step)
    for (Run& run : runs) {
      run.model->zero_grads();
      const LossStats s = run.model->forward_backward(f.batch, scale, uint64_t(step));
      run.losses.push_back(s.loss_sum / double(s.targets));
      run.opt->step(run.model->lora_param_tensor(), run.model->lora_grad_tensor(), f.adamw, f.adamw.lr);
    }
  double worst = 0.0;
  for (int step = 0; step < 50; ++step)
    worst = std::max(
        worst, std::fabs(runs[1].losses[size_t(step)] - runs[0].losses[size_t(step)]) / runs[0].losses[size_t(step)]);
  std::printf("%s %s 50 steps: loss %.4f -> %.4f (cpu), %.4f -> %.4f (gpu), worst step rel. diff %.2e\n",
              measured_tag(), GetParam(), runs[0].losses.front(), runs[0].losses.back(), runs[1].losses.front(),
              runs[1].losses.back(), worst);
  EXPECT_LE(worst, 2e-2);
  EXPECT_LT(runs[1].losses.back(), runs[1].losses.front()) << "the GPU run learns";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GpuModelStep, ::testing::Values("tied", "untied"));

}  // namespace
}  // namespace qsft::test
