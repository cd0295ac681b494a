// The CPU reference engine against Hugging Face transformers + PEFT (float64 reference from fp32 weights):
// logits, loss, every LoRA gradient, and the losses of 5 AdamW steps.
#include <cstdio>

#include "fixture.h"

namespace qsft::test {
namespace {

class HfFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(HfFixture, LogitsLossGradientsAndAdamWSteps) {
  QSFT_REQUIRE_FIXTURE(GetParam());
  Fixture f = load_fixture(GetParam());
  auto ops = make_cpu_ops();
  auto model = make_model(*ops, f, f.batch.num_tokens(), false);
  SafetensorsFile golden = SafetensorsFile::open((f.dir / "golden.safetensors").string());
  const LoraLayout& layout = model->lora_layout();

  // logits [T, V]
  std::vector<float> logits = model->logits(f.batch);
  const TensorInfo* ref_logits = golden.find("logits");
  ASSERT_NE(ref_logits, nullptr);
  ASSERT_EQ(logits.size() * 4, ref_logits->nbytes);
  const double logits_err = rel_max(logits.data(), static_cast<const float*>(ref_logits->data), logits.size());
  EXPECT_LE(logits_err, 1e-5) << "logits max rel. error";

  // loss and gradients: loss = sum CE / N
  const int64_t N = f.batch.num_targets();
  model->zero_grads();
  LossStats s = model->forward_backward(f.batch, 1.0f / float(N), 0);
  const double loss = s.loss_sum / double(N);
  const double loss_err = std::fabs(loss - f.loss) / std::fabs(f.loss);
  EXPECT_LE(loss_err, 1e-6) << "loss " << loss << " vs " << f.loss;
  std::vector<float> grads = model->lora_grads();
  double worst_grad = 0;
  for (const LoraSlot& slot : layout.slots())
    for (char which : {'A', 'B'}) {
      const std::string key = LoraLayout::peft_key(slot, which);
      const TensorInfo* ref = golden.find("grad." + key);
      ASSERT_NE(ref, nullptr) << key;
      const int64_t off = which == 'A' ? slot.a_offset : slot.b_offset;
      const size_t n = ref->nbytes / 4;
      const double err = rel_l2(grads.data() + off, static_cast<const float*>(ref->data), n);
      EXPECT_LE(err, 1e-4) << "gradient of " << key;
      worst_grad = std::max(worst_grad, err);
    }

  // 5 AdamW steps on the same batch: the loss before each update
  AdamWOptimizer opt(*ops, layout.num_params());
  double worst_step = 0;
  for (size_t k = 0; k < f.step_losses.size(); ++k) {
    model->zero_grads();
    LossStats st = model->forward_backward(f.batch, 1.0f / float(N), 0);
    const double err = std::fabs(st.loss_sum / double(N) - f.step_losses[k]) / std::fabs(f.step_losses[k]);
    EXPECT_LE(err, 1e-5) << "loss before AdamW step " << k;
    worst_step = std::max(worst_step, err);
    opt.step(model->lora_param_tensor(), model->lora_grad_tensor(), f.adamw, f.adamw.lr);
  }
  std::vector<float> after = model->lora_params();
  double worst_after = 0;
  for (const LoraSlot& slot : layout.slots())
    for (char which : {'A', 'B'}) {
      const TensorInfo* ref = golden.find("after5." + LoraLayout::peft_key(slot, which));
      ASSERT_NE(ref, nullptr);
      const int64_t off = which == 'A' ? slot.a_offset : slot.b_offset;
      worst_after =
          std::max(worst_after, rel_l2(after.data() + off, static_cast<const float*>(ref->data), ref->nbytes / 4));
    }
  EXPECT_LE(worst_after, 1e-5) << "LoRA parameters after 5 AdamW steps";
  std::printf(
      "[%s] max rel. errors: logits %.3g, loss %.3g, LoRA gradients %.3g, 5-step losses %.3g, "
      "params after 5 steps %.3g\n",
      GetParam().c_str(), logits_err, loss_err, worst_grad, worst_step, worst_after);
}

INSTANTIATE_TEST_SUITE_P(Cases, HfFixture, ::testing::Values("tied", "untied", "qwen3"));

}  // namespace
}  // namespace qsft::test
