// The weight-gradient ops of full fine-tuning on the CPU reference: linear_wgrad (dW += dy^T x, db += sum dy, also
// from a column slice), rmsnorm_wgrad and lm_head_ce's dW by finite differences of their forward, embedding_bwd
// against a plain loop over repeated ids. All accumulate into what the gradient held.
#include "ops_test_util.h"

namespace qsft::test {
namespace {

TEST(OpsWeightGrad, LinearWgradAccumulatesDyTransposedXAndTheBiasSum) {
  auto ops = make_cpu_ops();
  std::mt19937 rng(11);
  const int64_t T = 13, in = 7, out = 5, wide = 9;  // dy is columns [2, 2 + out) of a [T, wide] matrix
  F32 x({T, in}), dy_full({T, wide}), dW({out, in}), db({out});
  x.set(random_uniform(x.size(), rng));
  dy_full.set(random_uniform(dy_full.size(), rng));
  const std::vector<float> w0 = random_uniform(dW.size(), rng), b0 = random_uniform(db.size(), rng);
  dW.set(w0);
  db.set(b0);
  ops->linear_wgrad(dy_full.t.cols(2, 2 + out), x.t, LinearWeight{dW.t, db.t});
  std::vector<double> want_w(w0.begin(), w0.end()), want_b(b0.begin(), b0.end());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < out; ++o) {
      const double g = dy_full[size_t(t * wide + 2 + o)];
      want_b[size_t(o)] += g;
      for (int64_t i = 0; i < in; ++i) want_w[size_t(o * in + i)] += g * x[size_t(t * in + i)];
    }
  expect_all_close(dW.values(), want_w, 1e-6, 1e-5, "dW");
  expect_all_close(db.values(), want_b, 1e-6, 1e-5, "db");
}

TEST(OpsWeightGrad, RmsnormWgradIsTheDerivativeOfTheForwardInItsWeight) {
  auto ops = make_cpu_ops();
  std::mt19937 rng(12);
  const int64_t T = 6, H = 16;
  F32 x({T, H}), dy({T, H}), dw({H}), rstd({T});
  x.set(random_uniform(x.size(), rng));
  dy.set(random_uniform(dy.size(), rng));
  const std::vector<float> w = random_uniform(size_t(H), rng, 0.5f, 1.5f);
  auto forward = [&](const std::vector<float>& weights) {
    F32 wt({H}), y({T, H}), r({T});
    wt.set(weights);
    ops->rmsnorm_fwd(x.t, wt.t, 1e-6f, y.t, r.t);
    return y.values();
  };
  F32 wt({H}), y({T, H});
  wt.set(w);
  ops->rmsnorm_fwd(x.t, wt.t, 1e-6f, y.t, rstd.t);
  dw.set(std::vector<float>(size_t(H), 0.0f));
  ops->rmsnorm_wgrad(dy.t, x.t, rstd.t, dw.t);
  expect_fd_ok(directional_fd_error(forward, w, dy.values(), dw.values()), 1e-3, "rmsnorm_wgrad");
  const std::vector<float> once = dw.values();
  ops->rmsnorm_wgrad(dy.t, x.t, rstd.t, dw.t);  // accumulates
  for (size_t j = 0; j < once.size(); ++j) EXPECT_FLOAT_EQ(dw[j], 2.0f * once[j]);
}

TEST(OpsWeightGrad, EmbeddingBwdScatterAddsEveryTokenIntoItsRow) {
  auto ops = make_cpu_ops();
  std::mt19937 rng(13);
  const int64_t T = 10, V = 6, H = 4;
  I32 ids({T});
  ids.set({3, 1, 3, 0, 5, 3, 1, 1, 2, 3});  // repeated ids; row 4 never used
  F32 dout({T, H}), table({V, H});
  dout.set(random_uniform(dout.size(), rng));
  const std::vector<float> t0 = random_uniform(table.size(), rng);
  table.set(t0);
  ops->embedding_bwd(ids.t, dout.t, table.t);
  std::vector<double> want(t0.begin(), t0.end());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < H; ++j) want[size_t(ids[size_t(t)] * H + j)] += dout[size_t(t * H + j)];
  expect_all_close(table.values(), want, 1e-6, 1e-6, "embedding dtable");
  for (int64_t j = 0; j < H; ++j) EXPECT_EQ(table[size_t(4 * H + j)], t0[size_t(4 * H + j)]);  // untouched
}

TEST(OpsWeightGrad, LmHeadCeWeightGradientIsTheDerivativeOfTheLoss) {
  auto ops = make_cpu_ops();
  std::mt19937 rng(14);
  const int64_t T = 9, H = 8, V = 11;
  const float grad_scale = 0.25f;
  F32 h({T, H}), dh({T, H}), dW({V, H}), loss({1});
  I32 targets({T}), correct({1});
  h.set(random_uniform(h.size(), rng));
  targets.set({3, -100, 0, 10, 7, -100, 2, 2, 5});
  const std::vector<float> W = random_uniform(size_t(V * H), rng);
  auto loss_of = [&](const std::vector<float>& weights) {
    F32 w({V, H}), l({1});
    I32 c({1});
    w.set(weights);
    l.set({0.0f});
    c.set({0});
    ops->lm_head_ce(h.t, w.t, targets.t, 0.0f, l.t, c.t, nullptr);
    return l.values();
  };
  F32 w({V, H});
  w.set(W);
  loss.set({0.0f});
  correct.set({0});
  dW.set(std::vector<float>(dW.size(), 0.0f));
  ops->lm_head_ce(h.t, w.t, targets.t, grad_scale, loss.t, correct.t, &dh.t, &dW.t);
  expect_fd_ok(directional_fd_error(loss_of, W, {grad_scale}, dW.values()), 1e-3, "lm_head_ce dW");
}

}  // namespace
}  // namespace qsft::test
