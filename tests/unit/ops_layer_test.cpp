// CPU reference ops of one transformer layer apart from attention: embedding, RMSNorm (plain, residual-fused,
// backward, strided head views), RoPE, SwiGLU. Forward against naive double loops, backward by finite differences.
#include <gtest/gtest.h>

#include <cstring>

#include "kernels/rope.h"
#include "tests/unit/ops_test_util.h"

namespace qsft::test {
namespace {

TEST(OpsEmbedding, GathersRowsAndRejectsBadIds) {
  auto ops = make_cpu_ops();
  const int64_t V = 11, H = 6;
  std::mt19937 rng(1);
  F32 table({V, H}), out({4, H});
  table.set(random_uniform(size_t(V * H), rng));
  I32 ids({4});
  ids.set({3, 0, 10, 3});
  ops->embedding_fwd(ids.t, table.t, out.t);
  for (int64_t t = 0; t < 4; ++t)
    for (int64_t j = 0; j < H; ++j) EXPECT_EQ(out[size_t(t * H + j)], table[size_t(ids[size_t(t)] * H + j)]);
  ids[1] = int32_t(V);
  EXPECT_THROW(ops->embedding_fwd(ids.t, table.t, out.t), std::logic_error);
}

struct RmsNormInputs {
  static constexpr int64_t T = 7, H = 24;
  static constexpr float eps = 1e-6f;
  std::mt19937 rng{5};
  std::vector<float> x = random_uniform(size_t(T * H), rng), w = random_uniform(size_t(H), rng, 0.5f, 1.5f);
};

std::vector<float> rmsnorm(Ops& ops, const std::vector<float>& x, const std::vector<float>& w) {
  using In = RmsNormInputs;
  F32 xt({In::T, In::H}), wt({In::H}), y({In::T, In::H}), rstd({In::T});
  xt.set(x);
  wt.set(w);
  ops.rmsnorm_fwd(xt.t, wt.t, In::eps, y.t, rstd.t);
  return y.values();
}

TEST(OpsRmsNorm, ForwardMatchesNaive) {
  auto ops = make_cpu_ops();
  RmsNormInputs in;
  std::vector<double> want;
  for (int64_t t = 0; t < in.T; ++t) {
    double ms = 0.0;
    for (int64_t j = 0; j < in.H; ++j) ms += double(in.x[size_t(t * in.H + j)]) * in.x[size_t(t * in.H + j)] / in.H;
    for (int64_t j = 0; j < in.H; ++j)
      want.push_back(in.x[size_t(t * in.H + j)] / std::sqrt(ms + in.eps) * in.w[size_t(j)]);
  }
  expect_all_close(rmsnorm(*ops, in.x, in.w), want, 1e-6, 1e-6, "rmsnorm y");
}

TEST(OpsRmsNorm, BackwardAccumulatesFiniteDifferenceGradient) {
  auto ops = make_cpu_ops();
  RmsNormInputs in;
  const std::vector<float> dy0 = random_uniform(in.x.size(), in.rng), prior = random_uniform(in.x.size(), in.rng);
  F32 x({in.T, in.H}), w({in.H}), y({in.T, in.H}), rstd({in.T}), dy({in.T, in.H}), dx({in.T, in.H});
  x.set(in.x);
  w.set(in.w);
  dy.set(dy0);
  dx.set(prior);  // rmsnorm_bwd accumulates into dx
  ops->rmsnorm_fwd(x.t, w.t, in.eps, y.t, rstd.t);
  ops->rmsnorm_bwd(dy.t, x.t, w.t, rstd.t, dx.t);
  std::vector<float> grad = dx.values();
  for (size_t i = 0; i < grad.size(); ++i) grad[i] -= prior[i];
  auto f = [&](const std::vector<float>& v) { return rmsnorm(*ops, v, in.w); };
  expect_fd_ok(directional_fd_error(f, in.x, dy0, grad), 1e-3, "rmsnorm dx");
}

// Qwen3's head norms on strided head views: the k heads of a fused [T, (n + 2 nkv) D] QKV row (columns [nD, (n+nkv)D),
// token rows W apart) normalized into the same columns of another fused buffer give bit for bit what the packed
// [T * nkv, D] rows give: forward (y, rstd), backward accumulating and in place (dx = dy overwritten), weight
// gradient; every column outside the view stays as it was.
TEST(OpsRmsNorm, StridedHeadViewsMatchPackedExactly) {
  auto ops = make_cpu_ops();
  constexpr int64_t T = 5, n = 3, nkv = 2, D = 6, W = (n + 2 * nkv) * D, c0 = n * D, R = T * nkv;
  std::mt19937 rng(17);
  const std::vector<float> fused_x = random_uniform(size_t(T * W), rng), fused_dy = random_uniform(size_t(T * W), rng);
  const std::vector<float> fused_prior = random_uniform(size_t(T * W), rng), w0 = random_uniform(size_t(D), rng);
  auto gather = [&](const std::vector<float>& fused) {  // the view's rows packed: [T * nkv, D]
    std::vector<float> rows;
    for (int64_t t = 0; t < T; ++t)
      rows.insert(rows.end(), fused.begin() + t * W + c0, fused.begin() + t * W + c0 + nkv * D);
    return rows;
  };
  // The fused buffer holds the packed result in the view's columns and `outside` elsewhere, bit for bit.
  auto expect_view = [&](const F32& fused, const std::vector<float>& packed, const std::vector<float>& outside,
                         const char* what) {
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < W; ++c) {
        const bool in = c >= c0 && c < c0 + nkv * D;
        const float want = in ? packed[size_t(t * nkv * D + c - c0)] : outside[size_t(t * W + c)];
        ASSERT_EQ(std::memcmp(&fused.values()[size_t(t * W + c)], &want, 4), 0)
            << what << " token " << t << " col " << c;
      }
  };
  auto view = [&](F32& fused) { return fused.t.cols(c0, c0 + nkv * D).view({T, nkv, D}); };
  F32 w({D}), x({T, W}), xp({R, D}), y({T, W}), yp({R, D}), rstd({R}), rstdp({R});
  w.set(w0);
  x.set(fused_x);
  xp.set(gather(fused_x));
  const std::vector<float> poison = y.values();
  Tensor xv = view(x), yv = view(y);
  ops->rmsnorm_fwd(xv, w.t, 1e-6f, yv, rstd.t);
  ops->rmsnorm_fwd(xp.t, w.t, 1e-6f, yp.t, rstdp.t);
  expect_view(y, yp.values(), poison, "rmsnorm_fwd y");
  ASSERT_EQ(std::memcmp(rstd.data(), rstdp.data(), 4 * R), 0) << "rmsnorm_fwd rstd";

  F32 dy({T, W}), dyp({R, D}), dx({T, W}), dxp({R, D});
  dy.set(fused_dy);
  dyp.set(gather(fused_dy));
  dx.set(fused_prior);
  dxp.set(gather(fused_prior));
  Tensor dyv = view(dy), dxv = view(dx);
  ops->rmsnorm_bwd(dyv, xv, w.t, rstd.t, dxv);  // accumulating
  ops->rmsnorm_bwd(dyp.t, xp.t, w.t, rstd.t, dxp.t);
  expect_view(dx, dxp.values(), fused_prior, "rmsnorm_bwd dx (accumulated)");
  F32 dw({D}), dwp({D});
  dw.set(std::vector<float>(D, 0.5f));
  dwp.set(std::vector<float>(D, 0.5f));
  ops->rmsnorm_wgrad(dyv, xv, rstd.t, dw.t);
  ops->rmsnorm_wgrad(dyp.t, xp.t, rstd.t, dwp.t);
  ASSERT_EQ(std::memcmp(dw.data(), dwp.data(), 4 * D), 0) << "rmsnorm_wgrad dw";
  // In place: dy's view becomes dx = J^T dy, as the packed op overwriting a separate dx.
  F32 dxo({R, D});
  ops->rmsnorm_bwd(dyp.t, xp.t, w.t, rstd.t, dxo.t, false);
  ops->rmsnorm_bwd(dyv, xv, w.t, rstd.t, dyv, false);
  expect_view(dy, dxo.values(), fused_dy, "rmsnorm_bwd dx = dy (in place)");
  std::vector<float> grad = dxp.values(), prior = gather(fused_prior);
  for (size_t i = 0; i < grad.size(); ++i) ASSERT_EQ(grad[i], prior[i] + dxo[i]) << "accumulate = prior + overwrite";
}

// RoPE inputs: three packed sequences (positions restart), GQA-like head count, Qwen2.5's theta; scale is
// attention_scaling (YaRN's mscale; 1 for plain RoPE).
struct RopeInputs {
  static constexpr int64_t n = 3, D = 16;
  static constexpr float theta = 1e6f;
  float scale = 1.0f;
  PackedLayout layout{{5, 40, 4}};
  int64_t T = layout.total;
  std::mt19937 rng{9};
  std::vector<float> x = random_uniform(size_t(T * n * D), rng);
};

std::vector<float> rope(Ops& ops, RopeInputs& in, const std::vector<float>& x, bool forward) {
  F32 xt({in.T, in.n, in.D}), inv_freq({in.D / 2});
  xt.set(x);
  inv_freq.set(cpu::rope_default_inv_freq(in.D, in.theta));
  const RopeFreqs f{inv_freq.t, in.scale};
  forward ? ops.rope_fwd(xt.t, in.layout.seq, f) : ops.rope_bwd(xt.t, in.layout.seq, f);
  return xt.values();
}

TEST(OpsRope, ForwardMatchesRotateHalfFormula) {
  auto ops = make_cpu_ops();
  for (float scale : {1.0f, 1.3f}) {
    RopeInputs in;
    in.scale = scale;
    const int64_t half = in.D / 2;
    std::vector<double> want(in.x.size());
    for (int64_t t = 0; t < in.T; ++t)
      for (int64_t h = 0; h < in.n; ++h)
        for (int64_t i = 0; i < half; ++i) {
          // inv_freq and the angle in fp32 exactly as torch; the rotation in double.
          const float inv_freq = 1.0f / std::pow(in.theta, float(2 * i) / float(in.D));
          const double angle = float(in.layout.positions[size_t(t)]) * inv_freq;
          const size_t lo = size_t((t * in.n + h) * in.D + i), hi = lo + size_t(half);
          const double c = std::cos(angle) * scale, sn = std::sin(angle) * scale;
          want[lo] = in.x[lo] * c - in.x[hi] * sn;
          want[hi] = in.x[hi] * c + in.x[lo] * sn;
        }
    expect_all_close(rope(*ops, in, in.x, true), want, 1e-6, 1e-6, ("rope scale " + std::to_string(scale)).c_str());
  }
}

TEST(OpsRope, BackwardIsTheInverseRotation) {
  auto ops = make_cpu_ops();
  RopeInputs in;
  expect_all_close(rope(*ops, in, rope(*ops, in, in.x, true), false), to_double(in.x), 1e-6, 1e-6,
                   "rope_bwd(rope_fwd(x))");
  const std::vector<float> dy = random_uniform(in.x.size(), in.rng);
  auto f = [&](const std::vector<float>& v) { return rope(*ops, in, v, true); };
  expect_fd_ok(directional_fd_error(f, in.x, dy, rope(*ops, in, dy, false)), 1e-3, "rope dx");
  in.scale = 1.3f;  // a scaled rotation's backward is its transpose
  expect_fd_ok(directional_fd_error(f, in.x, dy, rope(*ops, in, dy, false)), 1e-3, "rope dx, scale 1.3");
}

// RoPE of q's and k's heads in one call over the strided [T, n + nkv, D] view of a fused [T, (n + 2 nkv) D] QKV
// buffer: exactly the packed result per head, v's columns untouched; the backward likewise.
TEST(OpsRope, StridedHeadViewMatchesPackedExactly) {
  auto ops = make_cpu_ops();
  RopeInputs in;  // its n heads: q's 2 and k's 1 here; one more kv head of v follows in the fused row
  const int64_t T = in.T, n = in.n, D = in.D, W = (n + 1) * D;
  std::vector<float> fused(size_t(T * W));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < W; ++c)
      fused[size_t(t * W + c)] = c < n * D ? in.x[size_t(t * n * D + c)] : float(t * W + c);
  for (bool forward : {true, false}) {
    F32 xt({T, W}), inv_freq({D / 2});
    xt.set(fused);
    inv_freq.set(cpu::rope_default_inv_freq(D, in.theta));
    const RopeFreqs f{inv_freq.t, 1.3f};
    Tensor heads = xt.t.cols(0, n * D).view({T, n, D});
    forward ? ops->rope_fwd(heads, in.layout.seq, f) : ops->rope_bwd(heads, in.layout.seq, f);
    in.scale = 1.3f;
    const std::vector<float> packed = rope(*ops, in, in.x, forward);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < W; ++c)
        ASSERT_EQ(xt[size_t(t * W + c)], c < n * D ? packed[size_t(t * n * D + c)] : fused[size_t(t * W + c)])
            << (forward ? "rope_fwd" : "rope_bwd") << " token " << t << " column " << c;
  }
}

struct SwigluInputs {
  static constexpr int64_t T = 6, I = 10;
  std::mt19937 rng{13};
  std::vector<float> gate_up = random_uniform(size_t(T * 2 * I), rng, -4.0f, 4.0f);
};

std::vector<float> swiglu(Ops& ops, const std::vector<float>& gate_up) {
  using In = SwigluInputs;
  F32 gu({In::T, 2 * In::I}), out({In::T, In::I});
  gu.set(gate_up);
  ops.swiglu_fwd(gu.t, out.t);
  return out.values();
}

TEST(OpsSwiglu, ForwardMatchesNaive) {
  auto ops = make_cpu_ops();
  SwigluInputs in;
  std::vector<double> want;
  for (int64_t t = 0; t < in.T; ++t)
    for (int64_t i = 0; i < in.I; ++i) {
      const double g = in.gate_up[size_t(t * 2 * in.I + i)], u = in.gate_up[size_t(t * 2 * in.I + in.I + i)];
      want.push_back(g / (1.0 + std::exp(-g)) * u);
    }
  expect_all_close(swiglu(*ops, in.gate_up), want, 1e-6, 1e-6, "swiglu");
}

TEST(OpsSwiglu, BackwardMatchesFiniteDifferences) {
  auto ops = make_cpu_ops();
  SwigluInputs in;
  const std::vector<float> dy0 = random_uniform(size_t(in.T * in.I), in.rng);
  F32 dy({in.T, in.I}), gu({in.T, 2 * in.I}), dgu({in.T, 2 * in.I});
  dy.set(dy0);
  gu.set(in.gate_up);
  ops->swiglu_bwd(dy.t, gu.t, dgu.t);
  auto f = [&](const std::vector<float>& v) { return swiglu(*ops, v); };
  expect_fd_ok(directional_fd_error(f, in.gate_up, dy0, dgu.values()), 1e-3, "swiglu dgate_up");
  ops->swiglu_bwd(dy.t, gu.t, gu.t);  // in place, as the model's backward runs it: the same bits
  EXPECT_EQ(gu.values(), dgu.values());
}

}  // namespace
}  // namespace qsft::test
