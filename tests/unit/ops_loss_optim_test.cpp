// CPU LM head + cross-entropy (chunked, masked targets) against full naive logits in double, its d_hidden by
// finite differences; AdamW against a hand-written scalar loop.
#include <gtest/gtest.h>

#include "tests/unit/ops_test_util.h"

namespace qsft::test {
namespace {

// By default 150 tokens (more than two 64-token chunks of trained ones), every third untrained, a third of the targets
// set to the argmax so the accuracy count is exercised.
struct CeInputs {
  static constexpr int64_t H = 16, V = 97;
  int64_t T;
  std::mt19937 rng{31};
  std::vector<float> h, W = random_uniform(size_t(V * H), rng);
  std::vector<int32_t> targets;
  std::vector<double> logits;  // [T, V] in double
  explicit CeInputs(int64_t tokens = 150) : T(tokens), h(random_uniform(size_t(T * H), rng)) {
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < V; ++j) {
        double s = 0.0;
        for (int64_t d = 0; d < H; ++d) s += double(h[size_t(t * H + d)]) * W[size_t(j * H + d)];
        logits.push_back(s);
      }
    for (int64_t t = 0; t < T; ++t) {
      const double* row = logits.data() + t * V;
      const int32_t argmax = int32_t(std::max_element(row, row + V) - row);
      targets.push_back(t % 3 == 0 ? -100 : t % 3 == 1 ? argmax : int32_t(rng() % V));
    }
  }
};

struct CeResult {
  float loss_sum;
  int32_t correct;
  std::vector<float> dh;
};

CeResult lm_head_ce(Ops& ops, const CeInputs& in, const std::vector<float>& h, float grad_scale, bool backward) {
  F32 ht({in.T, in.H}), W({in.V, in.H}), loss({1}), dh({in.T, in.H});
  I32 targets({in.T}), correct({1});
  ht.set(h);
  W.set(in.W);
  targets.set(in.targets);
  loss[0] = 1.5f;  // both accumulate
  correct[0] = 2;
  ops.lm_head_ce(ht.t, W.t, targets.t, grad_scale, loss.t, correct.t, backward ? &dh.t : nullptr);
  return {loss[0] - 1.5f, correct[0] - 2, dh.values()};
}

TEST(OpsCrossEntropy, MatchesNaiveFullLogits) {
  auto ops = make_cpu_ops();
  CeInputs in;
  const float grad_scale = 0.37f;
  double want_loss = 0.0;
  int32_t want_correct = 0;
  std::vector<double> want_dh(size_t(in.T * in.H), 0.0);
  for (int64_t t = 0; t < in.T; ++t) {
    if (in.targets[size_t(t)] < 0) continue;
    const double* row = in.logits.data() + t * in.V;
    const int32_t target = in.targets[size_t(t)];
    double sum = 0.0;
    for (int64_t j = 0; j < in.V; ++j) sum += std::exp(row[j]);
    want_loss += std::log(sum) - row[target];
    want_correct += int32_t(std::max_element(row, row + in.V) - row) == target;
    for (int64_t j = 0; j < in.V; ++j) {
      const double dlogit = grad_scale * (std::exp(row[j]) / sum - (j == target));
      for (int64_t d = 0; d < in.H; ++d) want_dh[size_t(t * in.H + d)] += dlogit * in.W[size_t(j * in.H + d)];
    }
  }
  const CeResult got = lm_head_ce(*ops, in, in.h, grad_scale, true);
  EXPECT_NEAR(got.loss_sum, want_loss, 1e-5 * want_loss);
  EXPECT_EQ(got.correct, want_correct);
  EXPECT_GT(want_correct, 40);
  expect_all_close(got.dh, want_dh, 1e-6, 1e-5, "lm_head_ce dh");  // untrained rows must be exactly 0

  const CeResult eval = lm_head_ce(*ops, in, in.h, grad_scale, false);
  EXPECT_EQ(eval.loss_sum, got.loss_sum);
  EXPECT_EQ(eval.correct, got.correct);
}

TEST(OpsCrossEntropy, HiddenGradientMatchesFiniteDifferences) {
  auto ops = make_cpu_ops();
  CeInputs in(12);  // few tokens: the fp32 loss sum stays small, so its rounding does not swamp the difference
  auto loss = [&](const std::vector<float>& h) {
    return std::vector<float>{lm_head_ce(*ops, in, h, 1.0f, false).loss_sum};
  };
  const std::vector<float> dh = lm_head_ce(*ops, in, in.h, 1.0f, true).dh;
  expect_fd_ok(directional_fd_error(loss, in.h, {1.0f}, dh), 1e-3, "lm_head_ce dh");
}

TEST(OpsCrossEntropy, RejectsTargetOutsideVocabulary) {
  auto ops = make_cpu_ops();
  F32 h({2, 4}), W({5, 4}), loss({1});
  I32 targets({2}), correct({1});
  targets.set({1, 5});
  EXPECT_THROW(ops->lm_head_ce(h.t, W.t, targets.t, 1.0f, loss.t, correct.t, nullptr), std::logic_error);
}

TEST(OpsAdamW, MatchesScalarLoopOverSteps) {
  auto ops = make_cpu_ops();
  const int64_t n = 1000;
  const AdamWHyper hyper{1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f, 0};
  std::mt19937 rng(41);
  const std::vector<float> p0 = random_uniform(size_t(n), rng);
  F32 p({n}), g({n}), m({n}), v({n});
  p.set(p0);
  m.set(std::vector<float>(size_t(n), 0.0f));
  v.set(std::vector<float>(size_t(n), 0.0f));
  std::vector<double> want_p(p0.begin(), p0.end()), want_m(size_t(n), 0.0), want_v(size_t(n), 0.0);
  const double lr = hyper.lr, b1 = hyper.beta1, b2 = hyper.beta2, eps = hyper.eps, wd = hyper.weight_decay;
  for (int64_t step = 1; step <= 4; ++step) {
    const std::vector<float> grad = random_uniform(size_t(n), rng);
    g.set(grad);
    AdamWHyper h = hyper;
    h.step = step;
    ops->adamw_step(p.t, g.t, m.t, v.t, h);
    for (size_t i = 0; i < size_t(n); ++i) {
      want_p[i] *= 1.0 - lr * wd;
      want_m[i] = b1 * want_m[i] + (1.0 - b1) * grad[i];
      want_v[i] = b2 * want_v[i] + (1.0 - b2) * grad[i] * grad[i];
      const double bc1 = 1.0 - std::pow(b1, double(step)), bc2 = 1.0 - std::pow(b2, double(step));
      want_p[i] -= lr / bc1 * want_m[i] / (std::sqrt(want_v[i]) / std::sqrt(bc2) + eps);
    }
  }
  expect_all_close(p.values(), want_p, 1e-6, 1e-6, "adamw p");
  expect_all_close(m.values(), want_m, 1e-7, 1e-6, "adamw m");
  expect_all_close(v.values(), want_v, 1e-9, 1e-6, "adamw v");
}

}  // namespace
}  // namespace qsft::test
