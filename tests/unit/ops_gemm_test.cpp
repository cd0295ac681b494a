// CPU GEMM: all four transpose cases against a naive double loop, beta 0 (C never read) and 1 (accumulate), bias,
// strided column slices (ld > cols), sizes that cross every blocking boundary; the linear-layer backward by
// finite differences.
#include <gtest/gtest.h>

#include "tests/unit/ops_test_util.h"

namespace qsft::test {
namespace {

// A [rows, cols] matrix stored inside a wider [rows, cols + pad] buffer whose padding holds a sentinel.
struct PaddedMatrix {
  static constexpr float kSentinel = 12345.0f;
  PaddedMatrix(int64_t rows, int64_t cols, int64_t pad, std::mt19937& rng)
      : rows(rows), cols(cols), storage({rows, cols + pad}) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols + pad; ++c) storage[size_t(r * (cols + pad) + c)] = kSentinel;
    const std::vector<float> values = random_uniform(size_t(rows * cols), rng);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) at(r, c) = values[size_t(r * cols + c)];
  }
  Mat mat() { return Mat::of(storage.t.cols(0, cols)); }
  float& at(int64_t r, int64_t c) { return storage[size_t(r * storage.t.dim(1) + c)]; }
  bool padding_untouched() {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = cols; c < storage.t.dim(1); ++c)
        if (at(r, c) != kSentinel) return false;
    return true;
  }
  int64_t rows, cols;
  F32 storage;
};

struct GemmCase {
  bool transA, transB;
  float beta;
  bool with_bias;
};

class GemmVsNaive : public ::testing::TestWithParam<GemmCase> {};

TEST_P(GemmVsNaive, MatchesDoubleLoop) {
  const GemmCase c = GetParam();
  const int64_t M = 37, N = 530, K = 300;  // M not a multiple of the tile, N > one B block, K > one K block
  const float alpha = 0.75f;
  std::mt19937 rng(11);
  PaddedMatrix A(c.transA ? K : M, c.transA ? M : K, 3, rng), B(c.transB ? N : K, c.transB ? K : N, 5, rng);
  PaddedMatrix C(M, N, 2, rng);
  if (c.beta == 0.0f)  // beta == 0 must never read C
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C.at(i, j) = std::numeric_limits<float>::quiet_NaN();
  F32 bias({N});
  bias.set(random_uniform(size_t(N), rng));

  std::vector<double> want(size_t(M * N));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k < K; ++k)
        s += double(c.transA ? A.at(k, i) : A.at(i, k)) * (c.transB ? B.at(j, k) : B.at(k, j));
      want[size_t(i * N + j)] =
          alpha * s + (c.beta == 0.0f ? 0.0 : c.beta * C.at(i, j)) + (c.with_bias ? bias[size_t(j)] : 0.0);
    }

  make_cpu_ops()->gemm(A.mat(), c.transA, B.mat(), c.transB, C.mat(), alpha, c.beta, c.with_bias ? &bias.t : nullptr);
  std::vector<float> got;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) got.push_back(C.at(i, j));
  expect_all_close(got, want, 1e-5, 1e-5, "gemm C");
  EXPECT_TRUE(C.padding_untouched()) << "gemm wrote outside the C slice";
}

INSTANTIATE_TEST_SUITE_P(AllCases, GemmVsNaive,
                         ::testing::Values(GemmCase{false, false, 0.0f, false}, GemmCase{false, true, 0.0f, true},
                                           GemmCase{true, false, 1.0f, false}, GemmCase{true, true, 1.0f, true},
                                           GemmCase{false, false, 1.0f, true}, GemmCase{false, true, 1.0f, false},
                                           GemmCase{true, false, 0.0f, true}, GemmCase{true, true, 0.0f, false}));

TEST(OpsGemm, ZeroDepthGivesBetaCPlusBias) {
  auto ops = make_cpu_ops();
  F32 C({3, 4}), bias({4});
  bias.set({1, 2, 3, 4});
  const Mat A{nullptr, DType::F32, 3, 0, 0}, B{nullptr, DType::F32, 0, 4, 4};  // K = 0
  ops->gemm(A, false, B, false, Mat::of(C.t), 1.0f, 0.0f, &bias.t);
  for (size_t i = 0; i < C.size(); ++i) EXPECT_EQ(C[i], float(i % 4 + 1));
}

TEST(OpsGemm, RejectsMismatchedShapes) {
  auto ops = make_cpu_ops();
  F32 A({3, 5}), B({4, 6}), C({3, 6});
  EXPECT_THROW(ops->gemm(Mat::of(A.t), false, Mat::of(B.t), false, Mat::of(C.t), 1.0f, 0.0f), std::logic_error);
}

// Linear layer y = x W^T + b through gemm; its backward dx = dy W and dW = dy^T x (transposed operands), checked
// by finite differences.
TEST(OpsGemm, LinearBackwardMatchesFiniteDifferences) {
  auto ops = make_cpu_ops();
  const int64_t T = 9, in = 13, out = 7;
  std::mt19937 rng(3);
  const std::vector<float> x0 = random_uniform(size_t(T * in), rng), w0 = random_uniform(size_t(out * in), rng);
  const std::vector<float> b0 = random_uniform(size_t(out), rng), dy0 = random_uniform(size_t(T * out), rng);
  auto linear = [&](const std::vector<float>& x, const std::vector<float>& w) {
    F32 xt({T, in}), wt({out, in}), bt({out}), y({T, out});
    xt.set(x);
    wt.set(w);
    bt.set(b0);
    ops->gemm(Mat::of(xt.t), false, Mat::of(wt.t), true, Mat::of(y.t), 1.0f, 0.0f, &bt.t);
    return y.values();
  };
  F32 x({T, in}), w({out, in}), dy({T, out}), dx({T, in}), dw({out, in});
  x.set(x0);
  w.set(w0);
  dy.set(dy0);
  ops->gemm(Mat::of(dy.t), false, Mat::of(w.t), false, Mat::of(dx.t), 1.0f, 0.0f);  // dx = dy W
  ops->gemm(Mat::of(dy.t), true, Mat::of(x.t), false, Mat::of(dw.t), 1.0f, 0.0f);   // dW = dy^T x
  expect_fd_ok(directional_fd_error([&](const std::vector<float>& v) { return linear(v, w0); }, x0, dy0, dx.values()),
               1e-3, "linear dx");
  expect_fd_ok(directional_fd_error([&](const std::vector<float>& v) { return linear(x0, v); }, w0, dy0, dw.values()),
               1e-3, "linear dW");
}

// The finite-difference check can fail: a gradient 1% off is caught.
TEST(OpsGemm, FiniteDifferenceCheckCatchesAOnePercentError) {
  std::mt19937 rng(4);
  const std::vector<float> x = random_uniform(50, rng), dy = random_uniform(50, rng);
  auto square = [](const std::vector<float>& v) {
    std::vector<float> y = v;
    for (float& e : y) e *= e;
    return y;
  };
  std::vector<float> grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) grad[i] = 2.0f * x[i] * dy[i] * 1.01f;
  EXPECT_GT(directional_fd_error(square, x, dy, grad), 5e-3);
}

}  // namespace
}  // namespace qsft::test
