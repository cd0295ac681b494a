// The Ops seam itself: frozen Linear layers against a naive loop (bias, residual, column-slice outputs, dgrad),
// Tensor row-stride views, argument checks made once for every backend (strided views refused where packed memory
// is needed, dtypes a backend does not compute in), the op-family and GEMM-shape profile, and ParamLayout's LoRA
// segments.
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>
#include <string>

#include "engine/base/half.h"
#include "engine/model/lora.h"
#include "test_util.h"
#include "tests/unit/ops_test_util.h"

namespace qsft::test {
namespace {

// y[t, o] = sum_i x[t, i] W[o, i] + b[o] + residual[t, o], in double.
std::vector<double> naive_linear(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
                                 const std::vector<float>* residual, int64_t T, int64_t in, int64_t out) {
  std::vector<double> y(size_t(T * out));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < out; ++o) {
      double acc = b.empty() ? 0.0 : b[size_t(o)];
      for (int64_t i = 0; i < in; ++i) acc += double(x[size_t(t * in + i)]) * w[size_t(o * in + i)];
      if (residual) acc += (*residual)[size_t(t * out + o)];
      y[size_t(t * out + o)] = acc;
    }
  return y;
}

TEST(OpsLinear, BiasAndResidualMatchNaive) {
  auto ops = make_cpu_ops();
  const int64_t T = 11, in = 19, out = 7;
  std::mt19937 rng(11);
  F32 x({T, in}), w({out, in}), b({out}), res({T, out}), y({T, out});
  x.set(random_uniform(x.size(), rng));
  w.set(random_uniform(w.size(), rng));
  b.set(random_uniform(b.size(), rng));
  res.set(random_uniform(res.size(), rng));
  const LinearWeight W{w.t, b.t};
  const std::vector<float> res_before = res.values();
  ops->linear(x.t, W, y.t, &res.t);
  EXPECT_EQ(res.values(), res_before) << "the residual is read in place, never written";
  expect_all_close(y.values(), naive_linear(x.values(), w.values(), b.values(), &res.values(), T, in, out), 1e-5, 1e-5,
                   "linear with residual");
  ops->linear(x.t, LinearWeight{w.t, {}}, y.t);
  expect_all_close(y.values(), naive_linear(x.values(), w.values(), {}, nullptr, T, in, out), 1e-5, 1e-5,
                   "linear without bias");
}

TEST(OpsLinear, WritesAColumnSliceAndLeavesTheRest) {
  auto ops = make_cpu_ops();
  const int64_t T = 5, in = 8, out = 3, wide = 10, c0 = 4;
  std::mt19937 rng(12);
  F32 x({T, in}), w({out, in}), y({T, wide});
  x.set(random_uniform(x.size(), rng));
  w.set(random_uniform(w.size(), rng));
  std::vector<float> sentinel(y.size(), 7.0f);
  y.set(sentinel);
  Tensor slice = y.t.cols(c0, c0 + out);
  ops->linear(x.t, LinearWeight{w.t, {}}, slice);
  const std::vector<double> want = naive_linear(x.values(), w.values(), {}, nullptr, T, in, out);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < wide; ++c) {
      const float got = y[size_t(t * wide + c)];
      if (c >= c0 && c < c0 + out)
        EXPECT_NEAR(got, want[size_t(t * out + c - c0)], 1e-5) << t << "," << c;
      else
        EXPECT_EQ(got, 7.0f) << "outside the slice at " << t << "," << c;
    }
}

TEST(OpsLinear, DgradOverwritesOrAccumulates) {
  auto ops = make_cpu_ops();
  const int64_t T = 6, in = 9, out = 4;
  std::mt19937 rng(13);
  F32 dy({T, out}), w({out, in}), dx({T, in});
  dy.set(random_uniform(dy.size(), rng));
  w.set(random_uniform(w.size(), rng));
  const std::vector<float> prior = random_uniform(dx.size(), rng);
  dx.set(prior);
  ops->linear_dgrad(dy.t, LinearWeight{w.t, {}}, dx.t, false);
  std::vector<double> want(dx.size());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < in; ++i) {
      double acc = 0;
      for (int64_t o = 0; o < out; ++o) acc += double(dy[size_t(t * out + o)]) * w[size_t(o * in + i)];
      want[size_t(t * in + i)] = acc;
    }
  expect_all_close(dx.values(), want, 1e-5, 1e-5, "dgrad overwrite");
  dx.set(prior);
  ops->linear_dgrad(dy.t, LinearWeight{w.t, {}}, dx.t, true);
  for (size_t i = 0; i < want.size(); ++i) want[i] += prior[i];
  expect_all_close(dx.values(), want, 1e-5, 1e-5, "dgrad accumulate");
}

TEST(TensorViews, RowsColsAndViewsOfAStridedMatrix) {
  F32 m({4, 10});
  const Tensor s = m.t.cols(3, 7);  // [4, 4] with row stride 10
  EXPECT_FALSE(s.contiguous());
  EXPECT_EQ(s.stride0(), 10);
  EXPECT_EQ(static_cast<float*>(s.rows(2, 3).data), m.data() + 2 * 10 + 3);
  const Tensor heads = s.view({4, 2, 2});  // regroups the trailing dimension, keeps the stride
  EXPECT_EQ(heads.stride0(), 10);
  EXPECT_THROW(s.view({2, 8}), std::logic_error);  // a strided view keeps its rows
  EXPECT_THROW((void)s.nbytes(), std::logic_error);
  EXPECT_TRUE(m.t.cols(0, 10).contiguous());
}

// cast: F32 -> BF16 rounds to nearest even (the GPU test compares its kernel with this), F32 -> F32 copies.
TEST(OpsCast, RoundsToBf16OrCopies) {
  auto ops = make_cpu_ops();
  std::mt19937 rng(15);
  F32 src({257}), same({257});
  src.set(random_uniform(src.size(), rng, -3.0f, 3.0f));
  src[0] = 1.0f + 1.0f / 256.0f;  // halfway between two bf16 values: rounds to even (1.0)
  std::vector<uint16_t> bits(src.size());
  Tensor dst(bits.data(), DType::BF16, {257});
  ops->cast(src.t, dst);
  for (size_t i = 0; i < bits.size(); ++i) ASSERT_EQ(bits[i], f32_to_bf16(src[i])) << i;
  EXPECT_EQ(bf16_to_f32(bits[0]), 1.0f);
  ops->cast(src.t, same.t);
  EXPECT_EQ(same.values(), src.values());
}

// sum_squares into a device value: the host value rounded to fp32; an empty input gives 0.
TEST(OpsSumSquares, DeviceValueIsTheHostValueInFp32) {
  auto ops = make_cpu_ops();
  std::mt19937 rng(16);
  F32 x({4097}), out({1}), none({0});
  x.set(random_uniform(x.size(), rng));
  ops->sum_squares(x.t, out.t);
  EXPECT_EQ(out[0], float(ops->sum_squares(x.t)));
  ops->sum_squares(none.t, out.t);
  EXPECT_EQ(out[0], 0.0f);
}

TEST(OpsChecks, PackedOpsRefuseStridedViewsAndBackendsTheirDtypes) {
  auto ops = make_cpu_ops();
  F32 x({4, 16}), w({8}), y({4, 8}), rstd({4});
  Tensor strided = x.t.cols(0, 8);
  try {
    ops->scale_inplace(strided, 2.0f);
    ADD_FAILURE() << "a strided scale input was accepted";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("scale y must be packed"), std::string::npos) << e.what();
  }
  // rmsnorm takes strided rows of H (head views of a fused output), but not a view whose rows are not rows of H.
  ops->rmsnorm_fwd(strided, w.t, 1e-6f, y.t, rstd.t);
  try {
    ops->rmsnorm_fwd(x.t.cols(0, 12), w.t, 1e-6f, y.t, rstd.t);
    ADD_FAILURE() << "a strided rmsnorm input of 12-wide rows was accepted for H = 8";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("rmsnorm x is [4, 12]"), std::string::npos) << e.what();
  }
  Tensor bf = y.t;
  bf.dtype = DType::BF16;  // the CPU backend computes in F32 only
  EXPECT_THROW(ops->scale_inplace(bf, 2.0f), std::logic_error);
  Tensor gpu_t = y.t;
  gpu_t.device = Device::CUDA;
  try {
    ops->scale_inplace(gpu_t, 2.0f);
    ADD_FAILURE() << "a CUDA tensor was accepted by the CPU backend";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("not a CPU tensor"), std::string::npos) << e.what();
  }
}

TEST(OpsProfile, CountsEveryOpFamilyWhenEnabled) {
  ::setenv("QSFT_PROFILE", "1", 1);
  auto ops = make_cpu_ops();
  ::unsetenv("QSFT_PROFILE");
  ASSERT_TRUE(ops->profiling());
  std::mt19937 rng(14);
  F32 x({3, 8}), w({8}), y({3, 8}), rstd({3}), lw({5, 8}), ly({3, 5});
  x.set(random_uniform(x.size(), rng));
  w.set(random_uniform(w.size(), rng));
  lw.set(random_uniform(lw.size(), rng));
  ops->rmsnorm_fwd(x.t, w.t, 1e-6f, y.t, rstd.t);
  ops->rmsnorm_fwd(x.t, w.t, 1e-6f, y.t, rstd.t);
  ops->linear(y.t, LinearWeight{lw.t, {}}, ly.t);
  ops->dropout(x.t, 0.1f, 3, y.t);
  ops->dropout_add(y.t, x.t, 0.1f, 3);
  ops->add_inplace(y.t, x.t);
  const std::string report = ops->profile_report();
  std::printf("%s", report.c_str());
  EXPECT_NE(report.find("rmsnorm                  2"), std::string::npos) << report;
  EXPECT_NE(report.find("linear (frozen)          1"), std::string::npos) << report;
  EXPECT_NE(report.find("dropout (LoRA)           2"), std::string::npos) << "LoRA dropout apart: " << report;
  EXPECT_NE(report.find("elementwise              1"), std::string::npos) << report;
  EXPECT_EQ(report.find("attention"), std::string::npos) << "families without calls are left out";
  ops->profile_reset();
  EXPECT_EQ(ops->profile_report().find("rmsnorm"), std::string::npos) << "reset clears the counts";
  EXPECT_FALSE(make_cpu_ops()->profiling());
}

// The report's row for `op` with these dims (numbers, or "T"): its calls, or -1 when there is none.
int64_t shape_row_calls(const std::string& report, const std::string& op, const std::string& M, const std::string& N,
                        const std::string& K) {
  std::istringstream lines(report);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(op + " ", 0) != 0) continue;
    std::istringstream rest(line.substr(op.size()));
    std::string m, n, k;
    int64_t calls = 0;
    if (rest >> m >> n >> k >> calls && m == M && n == N && k == K) return calls;
  }
  return -1;
}

TEST(OpsProfile, ListsGemmShapesByTimeInsideTheirFamilies) {
  ::setenv("QSFT_PROFILE", "1", 1);
  auto ops = make_cpu_ops();
  ::unsetenv("QSFT_PROFILE");
  std::mt19937 rng(15);
  const int64_t big = 192, T = 6, in = 16, r = 4;  // shape_row_calls' dims below
  F32 a({big, big}), b({big, big}), c({big, big}), s({2, 3}), t({3, 2}), st({2, 2});
  for (F32* m : {&a, &b, &c, &s, &t, &st}) m->set(random_uniform(m->size(), rng));
  for (int i = 0; i < 2; ++i) ops->gemm(Mat::of(a.t), false, Mat::of(b.t), true, Mat::of(c.t), 1.0f, 1.0f);
  ops->gemm(Mat::of(s.t), false, Mat::of(t.t), false, Mat::of(st.t), 1.0f, 0.0f);
  F32 x({T, in}), A({2 * r, in}), u({T, 2 * r}), scratch({T, in});
  x.set(random_uniform(x.size(), rng));
  A.set(random_uniform(A.size(), rng));
  const uint64_t seeds[2] = {5, 6};
  ops->lora_a_dropout(x.t, A.t, 0.1f, {seeds, 2}, u.t, scratch.t);
  ops->profile_tokens(T);  // from here a dimension of 6 is the micro-batch's T
  ops->lora_a_dropout(x.t, A.t, 0.1f, {seeds, 2}, u.t, scratch.t);
  const std::string report = ops->profile_report();
  std::printf("%s", report.c_str());
  EXPECT_NE(report.find("gemm (LoRA)              5"), std::string::npos) << "a shape's span is not a call more";
  EXPECT_EQ(shape_row_calls(report, "gemm NT +=", "192", "192", "192"), 2) << report;
  EXPECT_EQ(shape_row_calls(report, "gemm NN", "2", "2", "3"), 1) << report;
  EXPECT_EQ(shape_row_calls(report, "lora_a_dropout", "6", "8", "16"), 1) << report;
  EXPECT_EQ(shape_row_calls(report, "lora_a_dropout", "T", "8", "16"), 1) << report;
  EXPECT_NE(report.find("T: a micro-batch's tokens, 6 on average"), std::string::npos) << report;
  EXPECT_LT(report.find("gemm NT +="), report.find("gemm NN ")) << "the longest first: " << report;
  ops->profile_reset();
  const std::string after = ops->profile_report();
  EXPECT_EQ(after.find("GEMM shapes"), std::string::npos) << "reset starts a new window: " << after;
  ops->gemm(Mat::of(s.t), false, Mat::of(t.t), false, Mat::of(st.t), 1.0f, 0.0f);
  EXPECT_EQ(shape_row_calls(ops->profile_report(), "gemm NN", "2", "2", "3"), 1) << "counted again from the reset";
}

TEST(ParamLayout, LoraSegmentsArePeftKeysBackToBack) {
  const Qwen2Config c = small_qwen2_config();
  LoraConfig lc;
  lc.r = 3;
  lc.set_targets({"q_proj", "down_proj"}, "test");
  const LoraLayout layout(c, lc);
  const ParamLayout& p = layout.params();
  ASSERT_EQ(p.segments().size(), 2u * 2u * 2u);  // layers x targets x {A, B}
  int64_t next = 0;
  for (const ParamSegment& s : p.segments()) {
    EXPECT_EQ(s.offset, next) << s.name;
    next += s.numel();
  }
  EXPECT_EQ(next, layout.num_params());
  const LoraSlot* down1 = layout.find(1, LoraTarget::down);
  ASSERT_NE(down1, nullptr);
  const ParamSegment* b = p.find("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->offset, down1->b_offset);
  EXPECT_EQ(b->rows, 16);
  EXPECT_EQ(b->cols, 3);
}

}  // namespace
}  // namespace qsft::test
