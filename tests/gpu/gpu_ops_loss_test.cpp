// The fused LM head + cross-entropy on the GPU against the CPU op: masked targets (-100), loss sum, accuracy count
// and d_hidden, at the tiny vocabulary and the real Qwen2.5 ones (151936 for 0.5B with H 896, 152064 for 7B with
// H 3584), with token counts that do not fill a chunk; the eval path (no dh); long rows of logits in both load
// paths; and a batch with no trained target.
#include "tests/gpu/gpu_test_util.h"

namespace qsft::test {
namespace {

void check_ce(Ops& cpu, Ops& gpu, DType dt, int64_t T, int64_t H, int64_t V, std::mt19937& rng) {
  const std::string tag =
      std::string(dtype_name(dt)) + " T=" + std::to_string(T) + " H=" + std::to_string(H) + " V=" + std::to_string(V);
  Both h(cpu, gpu, dt, {T, H}, random_uniform(size_t(T * H), rng, -2.0f, 2.0f));
  Both W(cpu, gpu, dt, {V, H}, hashed_uniform(size_t(V * H), rng(), -0.1f, 0.1f));  // up to 545M values: the fast fill
  std::vector<int32_t> targets(static_cast<size_t>(T));
  std::uniform_int_distribution<int32_t> pick(0, int32_t(V - 1));
  for (size_t t = 0; t < targets.size(); ++t) targets[t] = t % 3 == 1 ? -100 : pick(rng);
  Both tg(cpu, gpu, DType::I32, {T});
  tg.c.set_i32(targets);
  tg.g.set_i32(targets);
  Both loss(cpu, gpu, DType::F32, {1}, {0.5f}), correct(cpu, gpu, DType::I32, {1}), dh(cpu, gpu, dt, {T, H});
  correct.c.set_i32({3});
  correct.g.set_i32({3});
  const float grad_scale = 1.0f / 7.0f;
  cpu.lm_head_ce(h.c.t, W.c.t, tg.c.t, grad_scale, loss.c.t, correct.c.t, &dh.c.t);
  gpu.lm_head_ce(h.g.t, W.g.t, tg.g.t, grad_scale, loss.g.t, correct.g.t, &dh.g.t);
  loss.expect_close(dt == DType::BF16 ? 5e-3 : 1e-5, "lm_head_ce loss_sum (+= 0.5) " + tag);
  // Accuracy can flip on near-ties after bf16 rounding of the logits: allow one token in a hundred.
  const float correct_g = correct.g.get()[0], correct_c = correct.c.get()[0];
  std::printf("%s lm_head_ce correct (+= 3) %s: gpu %.0f cpu %.0f (tolerance %lld)\n", measured_tag(), tag.c_str(),
              correct_g, correct_c, static_cast<long long>(1 + T / 100));
  EXPECT_NEAR(correct_g, correct_c, 1 + T / 100) << "correct " << tag;
  dh.expect_close(dt == DType::BF16 ? 2e-2 : 1e-4, "lm_head_ce dh " + tag);

  Both eval_loss(cpu, gpu, DType::F32, {1}, {0.0f}), eval_correct(cpu, gpu, DType::I32, {1});
  eval_correct.c.set_i32({0});
  eval_correct.g.set_i32({0});
  cpu.lm_head_ce(h.c.t, W.c.t, tg.c.t, 0.0f, eval_loss.c.t, eval_correct.c.t, nullptr);
  gpu.lm_head_ce(h.g.t, W.g.t, tg.g.t, 0.0f, eval_loss.g.t, eval_correct.g.t, nullptr);
  eval_loss.expect_close(dt == DType::BF16 ? 5e-3 : 1e-5, "lm_head_ce eval loss " + tag);
}

TEST(GpuCrossEntropy, TinyVocabMatchesCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(51);
  for (DType dt : {DType::F32, DType::BF16}) {
    check_ce(*cpu, *gpu, dt, 1, 64, 1000, rng);
    check_ce(*cpu, *gpu, dt, 41, 64, 1000, rng);
    check_ce(*cpu, *gpu, dt, 13001, 64, 1000, rng);  // 8667 trained tokens: more than one 8192-token chunk
    check_ce(*cpu, *gpu, dt, 29, 64, 1003, rng);     // rows of logits that are not 16-byte aligned: no vectors
    // The row pass's 4 loads per thread in flight over more than one batch of 512 x 4 steps, the last one partial:
    // 16-byte steps (bf16 2049, f32 4098 of them) and scalar steps (V not a multiple of 8: 4099).
    check_ce(*cpu, *gpu, dt, 23, 32, 16392, rng);
    check_ce(*cpu, *gpu, dt, 17, 32, 4099, rng);
  }
}

// A micro-batch with no trained target: the loss sum and the accuracy count unchanged, dh all zeros (its poison
// overwritten), as on the CPU.
TEST(GpuCrossEntropy, NoTrainedTargetLeavesTheSumsAndZeroesDh) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(53);
  const int64_t T = 21, H = 64, V = 1000;
  for (DType dt : {DType::F32, DType::BF16}) {
    const std::string tag = std::string(dtype_name(dt)) + " every target -100";
    Both h(*cpu, *gpu, dt, {T, H}, random_uniform(size_t(T * H), rng, -2.0f, 2.0f));
    Both W(*cpu, *gpu, dt, {V, H}, random_uniform(size_t(V * H), rng, -0.1f, 0.1f));
    Both tg(*cpu, *gpu, DType::I32, {T});
    tg.c.set_i32(std::vector<int32_t>(size_t(T), -100));
    tg.g.set_i32(std::vector<int32_t>(size_t(T), -100));
    Both loss(*cpu, *gpu, DType::F32, {1}, {0.5f}), correct(*cpu, *gpu, DType::I32, {1}), dh(*cpu, *gpu, dt, {T, H});
    correct.c.set_i32({3});
    correct.g.set_i32({3});
    cpu->lm_head_ce(h.c.t, W.c.t, tg.c.t, 1.0f, loss.c.t, correct.c.t, &dh.c.t);
    gpu->lm_head_ce(h.g.t, W.g.t, tg.g.t, 1.0f, loss.g.t, correct.g.t, &dh.g.t);
    EXPECT_EQ(loss.g.get()[0], 0.5f) << tag;
    EXPECT_EQ(correct.g.get()[0], 3.0f) << tag;
    dh.expect_max_close(0.0, "lm_head_ce dh " + tag);
    for (float v : dh.g.get()) ASSERT_EQ(v, 0.0f) << "dh " << tag;
  }
}

TEST(GpuCrossEntropy, QwenVocabsMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(52);
  check_ce(*cpu, *gpu, DType::BF16, 37, 896, 151936, rng);
  check_ce(*cpu, *gpu, DType::BF16, 19, 3584, 152064, rng);
}

}  // namespace
}  // namespace qsft::test
