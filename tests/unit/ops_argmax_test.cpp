// Ops::argmax_rows (greedy decoding on the device) against the host's greedy choice (next_token without sampling):
// random rows, a row whose maximum appears several times (the first wins), a row of -inf but one finite value, a
// row of one value. Bad shapes are refused.
#include <gtest/gtest.h>

#include "engine/generate/sampling.h"
#include "tests/unit/ops_test_util.h"

namespace qsft::test {
namespace {

TEST(OpsArgmax, EqualsTheGreedyChoice) {
  auto ops = make_cpu_ops();
  constexpr int64_t R = 5, V = 1000;
  std::mt19937 rng{11};
  std::vector<float> x = random_uniform(size_t(R * V), rng, -5.0f, 5.0f);
  for (int64_t i : {17, 400, 999}) x[size_t(V + i)] = 9.0f;  // row 1: ties, the first (17) wins
  std::fill(x.begin() + 2 * V, x.begin() + 3 * V, -INFINITY);  // row 2: one finite value
  x[size_t(2 * V + 640)] = -3.0f;
  std::fill(x.begin() + 3 * V, x.begin() + 4 * V, 0.5f);  // row 3: all equal
  F32 logits({R, V});
  I32 out({R});
  logits.set(x);
  ops->argmax_rows(logits.t, out.t);
  const SamplingConfig greedy;
  for (int64_t r = 0; r < R; ++r) {
    std::vector<float> row(x.begin() + r * V, x.begin() + (r + 1) * V);
    EXPECT_EQ(out[size_t(r)], next_token(row, {}, greedy, 0, 0)) << "row " << r;
  }
  EXPECT_EQ(out[1], 17);
  EXPECT_EQ(out[2], 640);
  EXPECT_EQ(out[3], 0);
}

TEST(OpsArgmax, RefusesMismatchedShapes) {
  auto ops = make_cpu_ops();
  F32 logits({3, 10});
  I32 out({2});
  EXPECT_THROW(ops->argmax_rows(logits.t, out.t), std::logic_error);
}

}  // namespace
}  // namespace qsft::test
