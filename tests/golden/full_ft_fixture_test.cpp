// Full fine-tuning on the CPU against transformers (float64 reference from fp32 weights, tools/make_fixtures.py ->
// full_ft.json / full_ft.safetensors): the loss, every weight's gradient (tied and untied lm_head, biases, norms,
// Qwen3's q/k norms, the embedding), the losses of 5 AdamW steps with the Trainer's no-decay group, and every weight
// after them.
#include <cstdio>

#include "fixture.h"

namespace qsft::test {
namespace {

struct FullFtGolden {
  double loss = 0;
  std::vector<double> step_losses;
  AdamWSettings adamw;
  std::vector<std::string> no_decay;
};

FullFtGolden load_full_ft(const Fixture& f) {
  simdjson::dom::parser parser;
  simdjson::dom::element g = parser.load((f.dir / "full_ft.json").string());
  FullFtGolden r;
  r.loss = double(g["loss"]);
  for (double x : g["step_losses"].get_array()) r.step_losses.push_back(x);
  simdjson::dom::element a = g["adamw"];
  r.adamw = {double(a["lr"]), double(a["beta1"]), double(a["beta2"]), double(a["eps"]), double(a["weight_decay"])};
  for (std::string_view n : g["no_weight_decay"].get_array()) r.no_decay.emplace_back(n);
  return r;
}

std::unique_ptr<Qwen2Model> make_full_model(Ops& ops, const Fixture& f, bool recompute) {
  ModelOptions opts;
  opts.max_tokens = f.batch.num_tokens();
  opts.recompute = recompute;
  opts.full_finetuning = true;
  auto m = std::make_unique<Qwen2Model>(ops, f.config, LoraConfig{}, opts);
  m->load_weights((f.dir / "model").string());
  return m;
}

// The worst rel_l2 of `host` (FullLayout order) against golden `prefix + name` for every weight.
double worst_against(const SafetensorsFile& golden, const FullLayout& layout, const std::vector<float>& host,
                     const std::string& prefix, double tol) {
  double worst = 0;
  for (const FullWeight& w : layout.weights()) {
    const TensorInfo* ref = golden.find(prefix + w.name);
    EXPECT_NE(ref, nullptr) << prefix + w.name;
    if (!ref) continue;
    EXPECT_EQ(int64_t(ref->nbytes / 4), w.numel()) << w.name;
    const double err = rel_l2(host.data() + w.offset, static_cast<const float*>(ref->data), size_t(w.numel()));
    EXPECT_LE(err, tol) << prefix << w.name;
    worst = std::max(worst, err);
  }
  return worst;
}

class FullFtFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(FullFtFixture, GradientsOfEveryWeightAndAdamWSteps) {
  QSFT_REQUIRE_FIXTURE(GetParam());
  Fixture f = load_fixture(GetParam());
  QSFT_REQUIRE_PATH(f.dir / "full_ft.json");
  const FullFtGolden g = load_full_ft(f);
  auto ops = make_cpu_ops();
  auto model = make_full_model(*ops, f, false);
  const FullLayout& layout = model->full_layout();
  SafetensorsFile golden = SafetensorsFile::open((f.dir / "full_ft.safetensors").string());

  // The layout's no-decay group is the Trainer's.
  std::vector<std::string> ours;
  for (const FullWeight& w : layout.weights())
    if (w.offset >= layout.decay_end()) ours.push_back(w.name);
  std::sort(ours.begin(), ours.end());
  EXPECT_EQ(ours, g.no_decay);

  const int64_t N = f.batch.num_targets();
  model->zero_grads();
  const LossStats s = model->forward_backward(f.batch, 1.0f / float(N), 0);
  const double loss_err = std::fabs(s.loss_sum / double(N) - g.loss) / g.loss;
  EXPECT_LE(loss_err, 1e-6);
  const double worst_grad = worst_against(golden, layout, model->lora_grads(), "grad.", 1e-4);

  AdamWOptimizer opt(*ops, layout.num_params(), layout.decay_end());
  double worst_step = 0;
  for (size_t k = 0; k < g.step_losses.size(); ++k) {
    model->zero_grads();
    const LossStats st = model->forward_backward(f.batch, 1.0f / float(N), 0);
    const double err = std::fabs(st.loss_sum / double(N) - g.step_losses[k]) / g.step_losses[k];
    EXPECT_LE(err, 1e-5) << "loss before AdamW step " << k;
    worst_step = std::max(worst_step, err);
    opt.step(model->lora_param_tensor(), model->lora_grad_tensor(), g.adamw, g.adamw.lr);
  }
  // 1e-4, not LoRA's 1e-5: the k_proj biases have elements with gradients near 1e-8 (under RoPE a key bias barely
  // moves the scores), where AdamW's m / sqrt(v) turns rounding into a step of size lr. torch's own fp32 run of the
  // same 5 steps is 5.0e-5 from the float64 reference there (tied case); every other weight is within 1e-5.
  const double worst_after = worst_against(golden, layout, model->lora_params(), "after5.", 1e-4);
  std::printf("[%s] full FT max rel. errors: loss %.3g, gradients %.3g, 5-step losses %.3g, weights after 5 %.3g\n",
              GetParam().c_str(), loss_err, worst_grad, worst_step, worst_after);
}

// Activation checkpointing recomputes each layer before its backward: the same gradients, bit for bit.
TEST_P(FullFtFixture, RecomputeGivesIdenticalGradients) {
  QSFT_REQUIRE_FIXTURE(GetParam());
  Fixture f = load_fixture(GetParam());
  auto ops = make_cpu_ops();
  std::vector<float> grads[2];
  for (bool recompute : {false, true}) {
    auto model = make_full_model(*ops, f, recompute);
    model->zero_grads();
    model->forward_backward(f.batch, 1.0f / float(f.batch.num_targets()), 0);
    grads[recompute] = model->lora_grads();
  }
  EXPECT_EQ(grads[0], grads[1]);
}

INSTANTIATE_TEST_SUITE_P(Cases, FullFtFixture, ::testing::Values("tied", "untied", "qwen3"));

}  // namespace
}  // namespace qsft::test
