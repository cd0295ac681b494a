// CPU attention: causal within each packed sequence, GQA. The forward against a plain T x T softmax per sequence
// (in double), the backward (dq, dk, dv) by finite differences; 3 packed sequences of odd lengths; strided head
// views (a fused QKV buffer) against packed tensors.
#include <gtest/gtest.h>

#include "tests/unit/ops_test_util.h"

namespace qsft::test {
namespace {

struct AttentionInputs {
  static constexpr int64_t n = 6, nkv = 2, D = 8;  // 3 query heads per kv head
  PackedLayout layout{{5, 9, 3}};
  int64_t T = layout.total;
  std::mt19937 rng{21};
  std::vector<float> q = random_uniform(size_t(T * n * D), rng, -2.0f, 2.0f);
  std::vector<float> k = random_uniform(size_t(T * nkv * D), rng, -2.0f, 2.0f);
  std::vector<float> v = random_uniform(size_t(T * nkv * D), rng);
};

struct AttentionResult {
  std::vector<float> out, lse;  // [T, n, D], [n, T]
};

AttentionResult attention(Ops& ops, AttentionInputs& in, const std::vector<float>& q, const std::vector<float>& k,
                          const std::vector<float>& v) {
  F32 qt({in.T, in.n, in.D}), kt({in.T, in.nkv, in.D}), vt({in.T, in.nkv, in.D});
  F32 out({in.T, in.n, in.D}), lse({in.n, in.T});
  qt.set(q);
  kt.set(k);
  vt.set(v);
  ops.attention_fwd(qt.t, kt.t, vt.t, in.layout.seq, out.t, lse.t);
  return {out.values(), lse.values()};
}

TEST(OpsAttention, ForwardMatchesNaiveSoftmaxPerSequence) {
  auto ops = make_cpu_ops();
  AttentionInputs in;
  const int64_t n = in.n, nkv = in.nkv, D = in.D, T = in.T;
  std::vector<double> want_out(size_t(T * n * D)), want_lse(size_t(n * T));
  const int32_t* cu = in.layout.cu_seqlens.data();
  for (int s = 0; s < in.layout.seq.num_seqs; ++s) {
    const int64_t b = cu[s], L = cu[s + 1] - cu[s];
    for (int64_t h = 0; h < n; ++h) {
      const int64_t g = h / (n / nkv);
      std::vector<double> scores(size_t(L * L), -INFINITY);  // [L, L], masked above the diagonal
      for (int64_t i = 0; i < L; ++i)
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0.0;
          for (int64_t d = 0; d < D; ++d)
            dot += double(in.q[size_t(((b + i) * n + h) * D + d)]) * in.k[size_t(((b + j) * nkv + g) * D + d)];
          scores[size_t(i * L + j)] = dot / std::sqrt(double(D));
        }
      for (int64_t i = 0; i < L; ++i) {
        double sum = 0.0;
        for (int64_t j = 0; j < L; ++j) sum += std::exp(scores[size_t(i * L + j)]);
        want_lse[size_t(h * T + b + i)] = std::log(sum);
        for (int64_t d = 0; d < D; ++d) {
          double o = 0.0;
          for (int64_t j = 0; j < L; ++j)
            o += std::exp(scores[size_t(i * L + j)]) / sum * in.v[size_t(((b + j) * nkv + g) * D + d)];
          want_out[size_t(((b + i) * n + h) * D + d)] = o;
        }
      }
    }
  }
  const AttentionResult got = attention(*ops, in, in.q, in.k, in.v);
  expect_all_close(got.out, want_out, 1e-6, 1e-5, "attention out");
  expect_all_close(got.lse, want_lse, 1e-6, 1e-5, "attention lse");
}

TEST(OpsAttention, BackwardMatchesFiniteDifferences) {
  auto ops = make_cpu_ops();
  AttentionInputs in;
  const std::vector<float> dout0 = random_uniform(in.q.size(), in.rng);
  const AttentionResult fwd = attention(*ops, in, in.q, in.k, in.v);
  F32 q({in.T, in.n, in.D}), k({in.T, in.nkv, in.D}), v({in.T, in.nkv, in.D}), out({in.T, in.n, in.D});
  F32 lse({in.n, in.T}), dout({in.T, in.n, in.D}), dq({in.T, in.n, in.D}), dk({in.T, in.nkv, in.D});
  F32 dv({in.T, in.nkv, in.D});
  q.set(in.q);
  k.set(in.k);
  v.set(in.v);
  out.set(fwd.out);
  lse.set(fwd.lse);
  dout.set(dout0);
  ops->attention_bwd(dout.t, q.t, k.t, v.t, out.t, lse.t, in.layout.seq, dq.t, dk.t, dv.t);

  auto f_q = [&](const std::vector<float>& x) { return attention(*ops, in, x, in.k, in.v).out; };
  auto f_k = [&](const std::vector<float>& x) { return attention(*ops, in, in.q, x, in.v).out; };
  auto f_v = [&](const std::vector<float>& x) { return attention(*ops, in, in.q, in.k, x).out; };
  expect_fd_ok(directional_fd_error(f_q, in.q, dout0, dq.values()), 1e-3, "attention dq");
  expect_fd_ok(directional_fd_error(f_k, in.k, dout0, dk.values()), 1e-3, "attention dk");
  expect_fd_ok(directional_fd_error(f_v, in.v, dout0, dv.values()), 1e-3, "attention dv");
}

// q, k, v as strided head views of one fused [T, (n + 2 nkv) D] buffer (as the model's QKV projection), their
// gradients as views of a poisoned d_qkv: exactly the packed results, and nothing written outside the views.
TEST(OpsAttention, StridedHeadViewsMatchPackedExactly) {
  auto ops = make_cpu_ops();
  AttentionInputs in;
  const int64_t T = in.T, n = in.n, nkv = in.nkv, D = in.D, W = (n + 2 * nkv) * D;
  F32 qkv({T, W}), d_qkv({T, W});
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < W; ++c) {
      const std::vector<float>& src = c < n * D ? in.q : c < (n + nkv) * D ? in.k : in.v;
      const int64_t row = c < n * D ? n * D : nkv * D, col = c < n * D ? c : (c - n * D) % (nkv * D);
      qkv[size_t(t * W + c)] = src[size_t(t * row + col)];
    }
  const Tensor q = qkv.t.cols(0, n * D).view({T, n, D}), k = qkv.t.cols(n * D, (n + nkv) * D).view({T, nkv, D});
  const Tensor v = qkv.t.cols((n + nkv) * D, W).view({T, nkv, D});
  F32 out({T, n, D}), lse({n, T});
  ops->attention_fwd(q, k, v, in.layout.seq, out.t, lse.t);
  const AttentionResult packed = attention(*ops, in, in.q, in.k, in.v);
  EXPECT_EQ(out.values(), packed.out);
  EXPECT_EQ(lse.values(), packed.lse);

  const std::vector<float> dout0 = random_uniform(in.q.size(), in.rng);
  F32 dout({T, n, D}), dq({T, n, D}), dk({T, nkv, D}), dv({T, nkv, D});
  F32 qp({T, n, D}), kp({T, nkv, D}), vp({T, nkv, D});
  dout.set(dout0);
  qp.set(in.q);
  kp.set(in.k);
  vp.set(in.v);
  ops->attention_bwd(dout.t, qp.t, kp.t, vp.t, out.t, lse.t, in.layout.seq, dq.t, dk.t, dv.t);  // packed reference
  std::fill(d_qkv.data(), d_qkv.data() + d_qkv.size(), 7.0f);                                   // poison
  Tensor dq_v = d_qkv.t.cols(0, n * D).view({T, n, D}), dk_v = d_qkv.t.cols(n * D, (n + nkv) * D).view({T, nkv, D});
  Tensor dv_v = d_qkv.t.cols((n + nkv) * D, W).view({T, nkv, D});
  ops->attention_bwd(dout.t, q, k, v, out.t, lse.t, in.layout.seq, dq_v, dk_v, dv_v);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < W; ++c) {
      const F32& ref = c < n * D ? dq : c < (n + nkv) * D ? dk : dv;
      const int64_t row = c < n * D ? n * D : nkv * D, col = c < n * D ? c : (c - n * D) % (nkv * D);
      ASSERT_EQ(d_qkv[size_t(t * W + c)], ref.values()[size_t(t * row + col)]) << "token " << t << " column " << c;
    }
  // a gradient's row stride must be its input's
  EXPECT_THROW(ops->attention_bwd(dout.t, q, k, v, out.t, lse.t, in.layout.seq, dq.t, dk_v, dv_v), std::logic_error);
}

TEST(OpsAttention, RejectsHeadsNotAMultipleOfKvHeads) {
  auto ops = make_cpu_ops();
  PackedLayout layout({3});
  F32 q({3, 3, 4}), k({3, 2, 4}), v({3, 2, 4}), out({3, 3, 4}), lse({3, 3});
  EXPECT_THROW(ops->attention_fwd(q.t, k.t, v.t, layout.seq, out.t, lse.t), std::logic_error);
}

}  // namespace
}  // namespace qsft::test
