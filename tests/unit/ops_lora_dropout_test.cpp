// Ops::lora_a_dropout on the CPU reference: bit for bit each member's dropout op then its GEMM (so the LoRA
// backward, which rebuilds the masks with dropout and the member's seed, sees the forward's masks), on random
// shapes with 1 to 3 members, odd T and in, p 0 / 0.05 / 0.5, u a column slice of a wider buffer; the backward's
// lora_da_dropout and lora_dx_dropout likewise; lora_db_du against its two GEMMs; and their checks.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "tests/unit/ops_test_util.h"

namespace qsft::test {
namespace {

struct LoraDropoutCase {
  int64_t T, in, r;
  int n;
  float p;
};

std::string describe(const LoraDropoutCase& c) {
  return "T " + std::to_string(c.T) + ", in " + std::to_string(c.in) + ", r " + std::to_string(c.r) + ", members " +
         std::to_string(c.n) + ", p " + std::to_string(c.p);
}

TEST(OpsLoraDropout, EqualsDropoutThenGemmPerMember) {
  auto ops = make_cpu_ops();
  std::mt19937 rng(61);
  for (const LoraDropoutCase& c : {LoraDropoutCase{13, 40, 4, 3, 0.05f}, {1, 8, 2, 1, 0.5f}, {37, 24, 8, 2, 0.0f},
                                   {7, 33, 3, 3, 0.5f}, {64, 72, 16, 2, 0.05f}, {300, 16, 8, 1, 0.05f}}) {
    SCOPED_TRACE(describe(c));
    const int64_t N = c.n * c.r;
    F32 x({c.T, c.in}), A({N, c.in}), u_buf({c.T, N + 3}), scratch({c.T, c.in}), want({c.T, N}), xd({c.T, c.in});
    x.set(random_uniform(x.size(), rng));
    A.set(random_uniform(A.size(), rng));
    const std::vector<uint64_t> seeds = {uint64_t(rng()) << 32 | rng(), uint64_t(rng()), 7};
    const std::span<const uint64_t> members(seeds.data(), size_t(c.n));
    Tensor u = u_buf.t.cols(1, 1 + N);  // a column slice: the other columns must stay as they were (NaN)
    ops->lora_a_dropout(x.t, A.t, c.p, members, u, scratch.t);
    for (int j = 0; j < c.n; ++j) {
      ops->dropout(x.t, c.p, seeds[size_t(j)], xd.t);
      ops->gemm(Mat::of(xd.t), false, Mat::of(A.t.rows(j * c.r, (j + 1) * c.r)), true,
                Mat::of(want.t.cols(j * c.r, (j + 1) * c.r)), 1.0f, 0.0f);
    }
    for (int64_t t = 0; t < c.T; ++t) {
      EXPECT_TRUE(std::isnan(u_buf[size_t(t * (N + 3))]) && std::isnan(u_buf[size_t(t * (N + 3) + N + 1)])) << t;
      for (int64_t k = 0; k < N; ++k)
        ASSERT_EQ(u_buf[size_t(t * (N + 3) + 1 + k)], want[size_t(t * N + k)]) << "row " << t << " column " << k;
    }
  }
}

// The backward's A gradients: dA_j += du_j^T dropout_j(x), bit for bit each member's dropout then its GEMM (beta 1).
TEST(OpsLoraDropout, GradientEqualsDropoutThenGemmPerMember) {
  auto ops = make_cpu_ops();
  std::mt19937 rng(67);
  for (const LoraDropoutCase& c : {LoraDropoutCase{13, 40, 4, 3, 0.05f}, {1, 8, 2, 1, 0.5f}, {37, 24, 16, 2, 0.0f},
                                   {70, 33, 3, 3, 0.5f}}) {
    SCOPED_TRACE(describe(c));
    const int64_t N = c.n * c.r;
    F32 x({c.T, c.in}), du({c.T, N}), dA({N, c.in}), want({N, c.in}), scratch({c.T, c.in}), xd({c.T, c.in});
    x.set(random_uniform(x.size(), rng));
    du.set(random_uniform(du.size(), rng));
    dA.set(random_uniform(dA.size(), rng));  // accumulated into
    want.set(dA.values());
    const uint64_t seeds[3] = {uint64_t(rng()) << 32 | rng(), uint64_t(rng()), 9};
    ops->lora_da_dropout(du.t, x.t, c.p, {seeds, size_t(c.n)}, dA.t, scratch.t);
    for (int j = 0; j < c.n; ++j) {
      ops->dropout(x.t, c.p, seeds[j], xd.t);
      ops->gemm(Mat::of(du.t.cols(j * c.r, (j + 1) * c.r)), true, Mat::of(xd.t), false,
                Mat::of(want.t.rows(j * c.r, (j + 1) * c.r)), 1.0f, 1.0f);
    }
    EXPECT_EQ(dA.values(), want.values());
  }
}

// The backward's input gradient: dx += sum_j dropout_j(du_j A_j), bit for bit each member's GEMM then dropout_add
// (the mask of dropout_j(x) at x's index, so d dropout_j(x) / dx); dx accumulated onto random values.
TEST(OpsLoraDropout, InputGradientEqualsGemmThenDropoutAddPerMember) {
  auto ops = make_cpu_ops();
  std::mt19937 rng(71);
  for (const LoraDropoutCase& c :
       {LoraDropoutCase{13, 40, 4, 3, 0.05f}, {1, 8, 2, 1, 0.5f}, {37, 24, 16, 2, 0.3f}, {70, 33, 3, 3, 0.5f}}) {
    SCOPED_TRACE(describe(c));
    const int64_t N = c.n * c.r;
    F32 du({c.T, N}), A({N, c.in}), dx({c.T, c.in}), want({c.T, c.in}), scratch({c.T, c.in}), g({c.T, c.in});
    du.set(random_uniform(du.size(), rng));
    A.set(random_uniform(A.size(), rng));
    const uint64_t seeds[3] = {uint64_t(rng()) << 32 | rng(), uint64_t(rng()), 11};
    // want (+)= each member's GEMM then dropout_add (the first member's dropout writes want when not accumulating)
    auto compose = [&](bool accumulate) {
      for (int j = 0; j < c.n; ++j) {
        ops->gemm(Mat::of(du.t.cols(j * c.r, (j + 1) * c.r)), false, Mat::of(A.t.rows(j * c.r, (j + 1) * c.r)), false,
                  Mat::of(g.t), 1.0f, 0.0f);
        if (j == 0 && !accumulate)
          ops->dropout(g.t, c.p, seeds[j], want.t);
        else
          ops->dropout_add(want.t, g.t, c.p, seeds[j]);
      }
    };
    dx.set(random_uniform(dx.size(), rng));  // accumulated into
    want.set(dx.values());
    ops->lora_dx_dropout(du.t, A.t, c.p, {seeds, size_t(c.n)}, dx.t, scratch.t);
    compose(true);
    EXPECT_EQ(dx.values(), want.values());
    // Not accumulated: dx = the sum alone, whatever dx held.
    dx.set(random_uniform(dx.size(), rng));
    ops->lora_dx_dropout(du.t, A.t, c.p, {seeds, size_t(c.n)}, dx.t, scratch.t, false);
    compose(false);
    EXPECT_EQ(dx.values(), want.values()) << "without accumulate";
  }
}

TEST(OpsLoraDropout, RefusesBadArguments) {
  auto ops = make_cpu_ops();
  F32 x({5, 16}), A({6, 16}), u({5, 6}), scratch({5, 16}), small({5, 15});
  x.set(std::vector<float>(x.size(), 1.0f));
  A.set(std::vector<float>(A.size(), 1.0f));
  const uint64_t seeds[4] = {1, 2, 3, 4};
  EXPECT_THROW(ops->lora_a_dropout(x.t, A.t, 0.1f, {seeds, 0}, u.t, scratch.t), std::logic_error);  // no member
  EXPECT_THROW(ops->lora_a_dropout(x.t, A.t, 0.1f, {seeds, 4}, u.t, scratch.t), std::logic_error);  // > 3
  F32 A5({5, 16}), u5({5, 5});
  EXPECT_THROW(ops->lora_a_dropout(x.t, A5.t, 0.1f, {seeds, 2}, u5.t, scratch.t), std::logic_error);  // 5 rows / 2
  EXPECT_THROW(ops->lora_a_dropout(x.t, A.t, 0.1f, {seeds, 2}, u.t, small.t), std::logic_error);     // scratch
  EXPECT_THROW(ops->lora_a_dropout(x.t, A.t, 1.0f, {seeds, 2}, u.t, scratch.t), std::logic_error);   // p
  ops->lora_a_dropout(x.t, A.t, 0.1f, {seeds, 3}, u.t, scratch.t);  // [6, 16] as 3 members of r = 2
  EXPECT_FALSE(std::isnan(u[0]));
  F32 dA({6, 16}), dA5({5, 16});
  dA.set(std::vector<float>(dA.size(), 0.0f));
  EXPECT_THROW(ops->lora_da_dropout(u.t, x.t, 0.1f, {seeds, 4}, dA.t, scratch.t), std::logic_error);  // > 3
  EXPECT_THROW(ops->lora_da_dropout(u.t, x.t, 0.1f, {seeds, 2}, dA5.t, scratch.t), std::logic_error);  // 5 rows
  EXPECT_THROW(ops->lora_da_dropout(u.t, x.t, 0.1f, {seeds, 2}, dA.t, small.t), std::logic_error);  // scratch
  EXPECT_THROW(ops->lora_da_dropout(u5.t, x.t, 0.1f, {seeds, 2}, dA.t, scratch.t), std::logic_error);  // du cols
  ops->lora_da_dropout(u.t, x.t, 0.1f, {seeds, 3}, dA.t, scratch.t);
  EXPECT_FALSE(std::isnan(dA[0]));
  F32 dx({5, 16}), dx15({5, 15});
  dx.set(std::vector<float>(dx.size(), 0.0f));
  EXPECT_THROW(ops->lora_dx_dropout(u.t, A.t, 0.1f, {seeds, 4}, dx.t, scratch.t), std::logic_error);    // > 3
  EXPECT_THROW(ops->lora_dx_dropout(u5.t, A.t, 0.1f, {seeds, 2}, dx.t, scratch.t), std::logic_error);   // du cols
  EXPECT_THROW(ops->lora_dx_dropout(u.t, A5.t, 0.1f, {seeds, 2}, dx.t, scratch.t), std::logic_error);   // 5 rows
  EXPECT_THROW(ops->lora_dx_dropout(u.t, A.t, 0.1f, {seeds, 2}, dx15.t, scratch.t), std::logic_error);  // A's in
  EXPECT_THROW(ops->lora_dx_dropout(u.t, A.t, 0.1f, {seeds, 2}, dx.t, small.t), std::logic_error);      // scratch
  EXPECT_THROW(ops->lora_dx_dropout(u.t, A.t, 0.1f, {seeds, 2}, dx.t, dx.t), std::logic_error);         // scratch is dx
  EXPECT_THROW(ops->lora_dx_dropout(u.t, A.t, 1.0f, {seeds, 2}, dx.t, scratch.t), std::logic_error);    // p
  ops->lora_dx_dropout(u.t, A.t, 0.1f, {seeds, 3}, dx.t, scratch.t);
  EXPECT_FALSE(std::isnan(dx[0]));
}

// LoRA's B and u gradients of one member (lora_db_du): bit for bit the two GEMMs it stands for (dB += s dy^T u, du =
// s dy B), with dy, u and du column slices of wider buffers (du's other columns untouched); and its checks.
TEST(OpsLoraDbDu, EqualsItsTwoGemms) {
  auto ops = make_cpu_ops();
  std::mt19937 rng(71);
  struct Case {
    int64_t T, out, r;
  };
  for (const Case c : {Case{13, 40, 4}, Case{1, 8, 16}, Case{70, 33, 3}, Case{400, 24, 16}}) {
    SCOPED_TRACE("T " + std::to_string(c.T) + " out " + std::to_string(c.out) + " r " + std::to_string(c.r));
    F32 dy_buf({c.T, c.out + 5}), u_buf({c.T, 2 * c.r}), B({c.out, c.r}), dB({c.out, c.r}), want_db({c.out, c.r}),
        du_buf({c.T, c.r + 2}), want_du({c.T, c.r}), scratch({c.T, c.out});
    for (F32* t : {&dy_buf, &u_buf, &B, &dB}) t->set(random_uniform(t->size(), rng));
    want_db.set(dB.values());
    const Tensor dy = dy_buf.t.cols(2, 2 + c.out), u = u_buf.t.cols(c.r, 2 * c.r);
    Tensor du = du_buf.t.cols(1, 1 + c.r);
    ops->lora_db_du(dy, u, B.t, 0.75f, dB.t, du, scratch.t);
    ops->gemm(Mat::of(dy), true, Mat::of(u), false, Mat::of(want_db.t), 0.75f, 1.0f);
    ops->gemm(Mat::of(dy), false, Mat::of(B.t), false, Mat::of(want_du.t), 0.75f, 0.0f);
    EXPECT_EQ(dB.values(), want_db.values());
    for (int64_t t = 0; t < c.T; ++t) {
      EXPECT_TRUE(std::isnan(du_buf[size_t(t * (c.r + 2))]) && std::isnan(du_buf[size_t(t * (c.r + 2) + c.r + 1)]));
      for (int64_t k = 0; k < c.r; ++k)
        ASSERT_EQ(du_buf[size_t(t * (c.r + 2) + 1 + k)], want_du[size_t(t * c.r + k)]) << "row " << t << " col " << k;
    }
  }
  F32 dy({6, 8}), u({6, 4}), B({8, 4}), dB({8, 4}), du({6, 4}), scratch({6, 8}), B7({7, 4}), dB3({8, 3});
  EXPECT_THROW(ops->lora_db_du(dy.t, u.t, B7.t, 1.0f, dB.t, du.t, scratch.t), std::logic_error);  // B's rows
  EXPECT_THROW(ops->lora_db_du(dy.t, u.t, B.t, 1.0f, dB3.t, du.t, scratch.t), std::logic_error);  // dB's shape
  EXPECT_THROW(ops->lora_db_du(dy.t, dy.t, B.t, 1.0f, dB.t, du.t, scratch.t), std::logic_error);  // u's shape
  EXPECT_THROW(ops->lora_db_du(dy.t, u.t, B.t, 1.0f, dB.t, u.t, scratch.t), std::logic_error);    // du is u
}

}  // namespace
}  // namespace qsft::test
