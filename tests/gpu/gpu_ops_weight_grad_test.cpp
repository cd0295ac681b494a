// The weight-gradient ops of full fine-tuning on the GPU against the CPU reference, for F32 and BF16 activations
// (F32 gradients): linear_wgrad (from a column slice, with bias), rmsnorm_wgrad (also over [T*heads, D] rows as the
// Qwen3 head norms use it), embedding_bwd with repeated ids (deterministic: two runs equal bit for bit), and
// lm_head_ce's dW. Every gradient starts non-zero: the ops accumulate.
#include "tests/gpu/gpu_test_util.h"

namespace qsft::test {
namespace {

class GpuWeightGrad : public ::testing::TestWithParam<DType> {};

std::string tag(DType d, const char* what) { return std::string(dtype_name(d)) + " " + what; }

// The same values into a CPU F32 tensor (rounded as dtype d stores them) and a GPU tensor of dtype d.
struct Pair {
  Pair(Ops& cpu, Ops& gpu, DType d, std::initializer_list<int64_t> shape, const std::vector<float>& v)
      : c(cpu, DType::F32, shape), g(gpu, d, shape) {
    c.set(as_stored(v, d));
    g.set(v);
  }
  OpsTensor c, g;
};

TEST_P(GpuWeightGrad, LinearWgradMatchesCpu) {
  QSFT_REQUIRE_GPU();
  const DType d = GetParam();
  std::mt19937 rng(21);
  const int64_t T = 300, in = 96, out = 80, wide = 200;
  Pair x(*cpu, *gpu, d, {T, in}, random_uniform(size_t(T * in), rng));
  Pair dy(*cpu, *gpu, d, {T, wide}, random_uniform(size_t(T * wide), rng));
  const std::vector<float> w0 = random_uniform(size_t(out * in), rng), b0 = random_uniform(size_t(out), rng);
  Pair dW(*cpu, *gpu, DType::F32, {out, in}, w0), db(*cpu, *gpu, DType::F32, {out}, b0);
  cpu->linear_wgrad(dy.c.t.cols(40, 40 + out), x.c.t, LinearWeight{dW.c.t, db.c.t});
  gpu->linear_wgrad(dy.g.t.cols(40, 40 + out), x.g.t, LinearWeight{dW.g.t, db.g.t});
  expect_close(read_gpu_result(dW.g, "dW"), dW.c.get(), 1e-5, tag(d, "linear_wgrad dW"));
  expect_close(read_gpu_result(db.g, "db"), db.c.get(), 1e-5, tag(d, "linear_wgrad db"));
}

TEST_P(GpuWeightGrad, RmsnormWgradMatchesCpu) {
  QSFT_REQUIRE_GPU();
  const DType d = GetParam();
  std::mt19937 rng(22);
  for (auto [rows, H] : {std::pair<int64_t, int64_t>{333, 160}, {4 * 257, 24}}) {  // a hidden norm; head norms
    Pair x(*cpu, *gpu, d, {rows, H}, random_uniform(size_t(rows * H), rng));
    Pair dy(*cpu, *gpu, d, {rows, H}, random_uniform(size_t(rows * H), rng));
    Pair rstd(*cpu, *gpu, DType::F32, {rows}, random_uniform(size_t(rows), rng, 0.5f, 2.0f));
    Pair dw(*cpu, *gpu, DType::F32, {H}, random_uniform(size_t(H), rng));
    cpu->rmsnorm_wgrad(dy.c.t, x.c.t, rstd.c.t, dw.c.t);
    gpu->rmsnorm_wgrad(dy.g.t, x.g.t, rstd.g.t, dw.g.t);
    expect_close(read_gpu_result(dw.g, "dw"), dw.c.get(), 1e-5, tag(d, "rmsnorm_wgrad") + " H " + std::to_string(H));
  }
}

TEST_P(GpuWeightGrad, EmbeddingBwdMatchesCpuAndIsDeterministic) {
  QSFT_REQUIRE_GPU();
  const DType d = GetParam();
  std::mt19937 rng(23);
  const int64_t T = 1000, V = 97, H = 136;
  std::vector<int32_t> ids(static_cast<size_t>(T));
  std::uniform_int_distribution<int32_t> pick(0, 40);  // ids 41.. never appear; the rest many times
  for (int32_t& id : ids) id = pick(rng);
  OpsTensor ids_c(*cpu, DType::I32, {T}), ids_g(*gpu, DType::I32, {T});
  ids_c.set_i32(ids);
  ids_g.set_i32(ids);
  Pair dout(*cpu, *gpu, d, {T, H}, random_uniform(size_t(T * H), rng));
  const std::vector<float> t0 = random_uniform(size_t(V * H), rng);
  Pair table(*cpu, *gpu, DType::F32, {V, H}, t0);
  cpu->embedding_bwd(ids_c.t, dout.c.t, table.c.t);
  gpu->embedding_bwd(ids_g.t, dout.g.t, table.g.t);
  const std::vector<float> first = read_gpu_result(table.g, "dtable");
  expect_close(first, table.c.get(), 1e-6, tag(d, "embedding_bwd"));
  table.g.set(t0);
  gpu->embedding_bwd(ids_g.t, dout.g.t, table.g.t);
  EXPECT_EQ(read_gpu_result(table.g, "dtable again"), first) << "embedding_bwd is not deterministic";
}

TEST_P(GpuWeightGrad, LmHeadCeWeightGradientMatchesCpu) {
  QSFT_REQUIRE_GPU();
  const DType d = GetParam();
  std::mt19937 rng(24);
  const int64_t T = 200, H = 64, V = 1000;
  Pair h(*cpu, *gpu, d, {T, H}, random_uniform(size_t(T * H), rng));
  Pair W(*cpu, *gpu, d, {V, H}, random_uniform(size_t(V * H), rng, -0.2f, 0.2f));
  std::vector<int32_t> targets(static_cast<size_t>(T));
  std::uniform_int_distribution<int32_t> pick(0, int32_t(V) - 1);
  for (size_t t = 0; t < targets.size(); ++t) targets[t] = t % 5 == 0 ? -100 : pick(rng);
  OpsTensor tc(*cpu, DType::I32, {T}), tg(*gpu, DType::I32, {T});
  tc.set_i32(targets);
  tg.set_i32(targets);
  Pair dW(*cpu, *gpu, DType::F32, {V, H}, random_uniform(size_t(V * H), rng, -1e-3f, 1e-3f));
  Pair loss(*cpu, *gpu, DType::F32, {1}, {0.0f});
  OpsTensor cc(*cpu, DType::I32, {1}), cg(*gpu, DType::I32, {1}), dhc(*cpu, DType::F32, {T, H}), dhg(*gpu, d, {T, H});
  cc.set_i32({0});
  cg.set_i32({0});
  cpu->lm_head_ce(h.c.t, W.c.t, tc.t, 0.01f, loss.c.t, cc.t, &dhc.t, &dW.c.t);
  gpu->lm_head_ce(h.g.t, W.g.t, tg.t, 0.01f, loss.g.t, cg.t, &dhg.t, &dW.g.t);
  expect_close(read_gpu_result(dW.g, "lm_head dW"), dW.c.get(), tolerance(d), tag(d, "lm_head_ce dW"));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GpuWeightGrad, ::testing::Values(DType::F32, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace qsft::test
