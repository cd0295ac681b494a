// CUDA attention, forward and backward, against the CPU reference on fresh random bf16 inputs, for every
// implementation the op can run (QSFT_ATTENTION=wmma, =mma with the device's tiles, =mma with the "large" tiles and
// the 99 KiB "small" ones forced by QSFT_ATTENTION_TILES, =mma with the atomic-dQ fast backward
// QSFT_ATTENTION_BWD=atomic, the only one not checked for bitwise repeats): head_dim 16/32, 64 (Qwen2.5-0.5B: 14
// query / 2 kv heads), 128 (7B: 28 / 4) and the padded ones between (8 and 24 of the test fixtures, 40, 80, 96:
// zero-filled columns), GQA, packed sequences of odd lengths (single tokens, many short sequences, lengths around
// the 64/128-row tiles, 4 x 4096), a bitwise repeat of the backward. Every comparison prints max abs error, rel. L2
// error and cosine, so one run shows which variant and which output is off. Strided head views (a fused QKV buffer)
// against the packed op, bitwise.
#include <cstdlib>

#include "tests/gpu/gpu_test_util.h"
#if defined(QSFT_HAVE_CUDA)
#include "kernels/attention_cuda.h"
#endif

namespace qsft::test {
namespace {

struct AttnCase {
  int64_t n, nkv, D;
  std::vector<int> lengths;
};

std::string describe(const AttnCase& c) {
  std::string s = "n=" + std::to_string(c.n) + "/" + std::to_string(c.nkv) + " D=" + std::to_string(c.D) + " seqs=";
  if (c.lengths.size() > 6) return s + std::to_string(c.lengths.size()) + "x(" + std::to_string(c.lengths[0]) + "..)";
  for (int l : c.lengths) s += std::to_string(l) + ",";
  return s;
}

// One implementation of the CUDA op, selected through the environment the launchers read at each call.
struct Variant {
  const char* name;
  const char* impl;   // QSFT_ATTENTION
  const char* tiles;  // QSFT_ATTENTION_TILES ("" = the device's choice)
  const char* bwd;    // QSFT_ATTENTION_BWD ("" = deterministic)
};
constexpr Variant kVariants[] = {{"wmma", "wmma", "", ""},
                                 {"mma", "mma", "", ""},
                                 {"mma-large", "mma", "large", ""},
                                 {"mma-small", "mma", "small", ""},
                                 {"mma-atomic-dq", "mma", "", "atomic"}};

// Sets an environment variable for the scope (restores the previous value).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    ::setenv(name, value, 1);
  }
  ~ScopedEnv() { had_ ? (void)::setenv(name_, old_.c_str(), 1) : (void)::unsetenv(name_); }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

// Prints max abs error (and the largest reference value), rel. L2 error and cosine; expects rel. L2 <= rel_tol and
// max abs error <= max_tol * max |want|.
void expect_match(const std::vector<float>& got, const std::vector<float>& want, double rel_tol, double max_tol,
                  const std::string& what) {
  double worst = got.size() == want.size() ? 0.0 : INFINITY, scale = 0.0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    worst = std::isfinite(got[i]) ? std::max(worst, std::fabs(double(got[i]) - want[i])) : INFINITY;
    scale = std::max(scale, std::fabs(double(want[i])));
  }
  const double rel = rel_l2_error(got, want), cos = cosine(got, want);
  std::printf("[ GPU      ] %-62s max abs %.2e (max|ref| %.2e)  rel L2 %.2e  cos %.6f\n", what.c_str(), worst, scale,
              rel, cos);
  EXPECT_LE(rel, rel_tol) << what;
  EXPECT_LE(worst, max_tol * scale) << what << " (max abs error)";
}

// Tolerances: a numpy model of these kernels' roundings (bf16 P and dS, bf16 stores) gives rel. L2 errors of
// ~2e-3 (out) and ~3e-3 (dq, dk, dv), max-abs errors ~5e-3 of the largest value, lse ~1e-7.
void check_case(Ops& cpu, Ops& gpu, const AttnCase& k, std::mt19937& rng) {
  OpsLayout lc(cpu, k.lengths), lg(gpu, k.lengths);
  const int64_t T = lc.total;
  const DType B = DType::BF16;
  const std::string tag = describe(k);
  Both q(cpu, gpu, B, {T, k.n, k.D}, random_uniform(size_t(T * k.n * k.D), rng, -2.0f, 2.0f));
  Both kk(cpu, gpu, B, {T, k.nkv, k.D}, random_uniform(size_t(T * k.nkv * k.D), rng, -2.0f, 2.0f));
  Both v(cpu, gpu, B, {T, k.nkv, k.D}, random_uniform(size_t(T * k.nkv * k.D), rng));
  Both dout(cpu, gpu, B, {T, k.n, k.D}, random_uniform(size_t(T * k.n * k.D), rng));
  Both out(cpu, gpu, B, {T, k.n, k.D}), lse(cpu, gpu, DType::F32, {k.n, T});
  Both dq(cpu, gpu, B, {T, k.n, k.D}), dk(cpu, gpu, B, {T, k.nkv, k.D}), dv(cpu, gpu, B, {T, k.nkv, k.D});
  // The CPU reference once; each GPU variant's backward runs on its own forward outputs (as the model does).
  cpu.attention_fwd(q.c.t, kk.c.t, v.c.t, lc.seq, out.c.t, lse.c.t);
  cpu.attention_bwd(dout.c.t, q.c.t, kk.c.t, v.c.t, out.c.t, lse.c.t, lc.seq, dq.c.t, dk.c.t, dv.c.t);
  const std::vector<float> want_out = out.c.get(), want_lse = lse.c.get();
  const std::vector<float> want_dq = dq.c.get(), want_dk = dk.c.get(), want_dv = dv.c.get();

  for (const Variant& var : kVariants) {
    const ScopedEnv impl("QSFT_ATTENTION", var.impl), tiles("QSFT_ATTENTION_TILES", var.tiles),
        bwd("QSFT_ATTENTION_BWD", var.bwd);
    const bool deterministic = *var.bwd == '\0';
    const std::string vt = std::string(var.name) + " " + tag;
    for (Both* t : {&out, &lse, &dq, &dk, &dv}) t->g.poison();
    gpu.attention_fwd(q.g.t, kk.g.t, v.g.t, lg.seq, out.g.t, lse.g.t);
    expect_match(out.g.get(), want_out, 5e-3, 2e-2, "out " + vt);
    expect_match(lse.g.get(), want_lse, 1e-4, 1e-4, "lse " + vt);
    gpu.attention_bwd(dout.g.t, q.g.t, kk.g.t, v.g.t, out.g.t, lse.g.t, lg.seq, dq.g.t, dk.g.t, dv.g.t);
    const std::vector<float> dq1 = dq.g.get(), dk1 = dk.g.get(), dv1 = dv.g.get();
    expect_match(dq1, want_dq, 1e-2, 2e-2, "dq " + vt);
    expect_match(dk1, want_dk, 1e-2, 2e-2, "dk " + vt);
    expect_match(dv1, want_dv, 1e-2, 2e-2, "dv " + vt);

    // Bitwise repeat (the fast mode's dq is the one output allowed to differ in its last bits).
    for (Both* t : {&dq, &dk, &dv}) t->g.poison();
    gpu.attention_bwd(dout.g.t, q.g.t, kk.g.t, v.g.t, out.g.t, lse.g.t, lg.seq, dq.g.t, dk.g.t, dv.g.t);
    if (deterministic) {
      EXPECT_EQ(dq.g.get(), dq1) << "deterministic dq " << vt;
    }
    EXPECT_EQ(dk.g.get(), dk1) << "deterministic dk " << vt;
    EXPECT_EQ(dv.g.get(), dv1) << "deterministic dv " << vt;
  }
}

// q, k, v as strided head views of one fused [T, (n + 2 nkv) D] buffer (the model's QKV projection) and dq, dk, dv
// as views of a poisoned d_qkv: for every variant, the bits of the same op on packed copies (Ops::copy of the views;
// the packed op is checked against the CPU above); the atomic-dQ mode's dq only to its run-to-run tolerance.
void check_strided_case(Ops& gpu, const AttnCase& k, std::mt19937& rng) {
  OpsLayout lg(gpu, k.lengths);
  const int64_t T = lg.total, n = k.n, nkv = k.nkv, D = k.D, W = (n + 2 * nkv) * D;
  const DType B = DType::BF16;
  const std::string tag = "strided " + describe(k);
  OpsTensor qkv(gpu, B, {T, W}), d_qkv(gpu, B, {T, W}), dout(gpu, B, {T, n, D});
  qkv.set(random_uniform(size_t(T * W), rng, -2.0f, 2.0f));
  dout.set(random_uniform(size_t(T * n * D), rng));
  auto heads = [&](const OpsTensor& fused, int64_t c0, int64_t h) {
    return fused.t.cols(c0 * D, (c0 + h) * D).view({T, h, D});
  };
  const Tensor q = heads(qkv, 0, n), kk = heads(qkv, n, nkv), v = heads(qkv, n + nkv, nkv);
  Tensor dq_v = heads(d_qkv, 0, n), dk_v = heads(d_qkv, n, nkv), dv_v = heads(d_qkv, n + nkv, nkv);
  OpsTensor qp(gpu, B, {T, n, D}), kp(gpu, B, {T, nkv, D}), vp(gpu, B, {T, nkv, D});
  gpu.copy(qp.t, q);
  gpu.copy(kp.t, kk);
  gpu.copy(vp.t, v);
  OpsTensor out(gpu, B, {T, n, D}), lse(gpu, DType::F32, {n, T}), out_p(gpu, B, {T, n, D});
  OpsTensor lse_p(gpu, DType::F32, {n, T}), dq(gpu, B, {T, n, D}), dk(gpu, B, {T, nkv, D}), dv(gpu, B, {T, nkv, D});
  OpsTensor back_q(gpu, B, {T, n, D}), back_k(gpu, B, {T, nkv, D}), back_v(gpu, B, {T, nkv, D});
  for (const Variant& var : kVariants) {
    const ScopedEnv impl("QSFT_ATTENTION", var.impl), tiles("QSFT_ATTENTION_TILES", var.tiles),
        bwd("QSFT_ATTENTION_BWD", var.bwd);
    const std::string vt = std::string(var.name) + " " + tag;
    for (OpsTensor* t : {&out, &lse, &out_p, &lse_p, &dq, &dk, &dv, &d_qkv}) t->poison();
    gpu.attention_fwd(qp.t, kp.t, vp.t, lg.seq, out_p.t, lse_p.t);
    gpu.attention_fwd(q, kk, v, lg.seq, out.t, lse.t);
    EXPECT_EQ(out.get(), out_p.get()) << "out " << vt;
    EXPECT_EQ(lse.get(), lse_p.get()) << "lse " << vt;
    gpu.attention_bwd(dout.t, qp.t, kp.t, vp.t, out_p.t, lse_p.t, lg.seq, dq.t, dk.t, dv.t);
    gpu.attention_bwd(dout.t, q, kk, v, out.t, lse.t, lg.seq, dq_v, dk_v, dv_v);
    gpu.copy(back_q.t, dq_v);
    gpu.copy(back_k.t, dk_v);
    gpu.copy(back_v.t, dv_v);
    if (*var.bwd == '\0') {
      EXPECT_EQ(back_q.get(), dq.get()) << "dq " << vt;
    } else {
      expect_match(back_q.get(), dq.get(), 1e-2, 2e-2, "dq " + vt);
    }
    EXPECT_EQ(back_k.get(), dk.get()) << "dk " << vt;
    EXPECT_EQ(back_v.get(), dv.get()) << "dv " << vt;
  }
}

TEST(GpuAttention, StridedHeadViewsMatchPacked) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(46);
  check_strided_case(*gpu, {4, 2, 16, {7, 13, 20}}, rng);
  check_strided_case(*gpu, {14, 2, 64, {1, 63, 130}}, rng);
  check_strided_case(*gpu, {28, 4, 128, {127, 129, 1}}, rng);
}

TEST(GpuAttention, TinyHeadDimPackedMatchesCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(41);
  check_case(*cpu, *gpu, {4, 2, 16, {7, 13, 20}}, rng);  // the tiny fixture's layout
  check_case(*cpu, *gpu, {4, 4, 32, {1, 1, 65, 2}}, rng);
}

TEST(GpuAttention, Qwen05bShapesMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(42);
  check_case(*cpu, *gpu, {14, 2, 64, {1, 63, 64, 65, 130}}, rng);
  check_case(*cpu, *gpu, {14, 2, 64, {517}}, rng);
  check_case(*cpu, *gpu, {14, 2, 64, {1, 1, 1, 1, 1, 1, 1}}, rng);  // single-token sequences only
}

TEST(GpuAttention, Qwen7bShapesMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(43);
  check_case(*cpu, *gpu, {28, 4, 128, {3, 200, 129}}, rng);
  check_case(*cpu, *gpu, {28, 4, 128, {127, 128, 129, 1, 255, 31}}, rng);  // around the 128-row tiles
}

TEST(GpuAttention, ManyShortSequencesMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(44);
  std::vector<int> lengths(150);  // ~1800 tokens: small enough for the compute-sanitizer stage
  for (int& l : lengths) l = 1 + int(rng() % 23);
  check_case(*cpu, *gpu, {28, 4, 128, lengths}, rng);
  check_case(*cpu, *gpu, {14, 2, 64, lengths}, rng);
}

// The benchmark's shape (Qwen2.5-7B, 4 packed sequences of 4096): every tile full, long online-softmax runs.
// The CPU reference dominates: ~17 s per 1024 x 1024 tokens x 28 heads (fwd + bwd) on one core, so ~1.5 min on
// 16 cores for both cases; --gtest_filter='-*4x4096*' leaves it out when device time is short.
TEST(GpuAttention, Qwen7bPacked4x4096MatchesCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(45);
  check_case(*cpu, *gpu, {28, 4, 128, {4096, 4096, 4096, 4096}}, rng);
  check_case(*cpu, *gpu, {14, 2, 64, {4096, 4096, 4096, 4096}}, rng);
}

// Head dims that are not instantiated run on the next one up with zero-filled columns (kernels/attention_cuda.h):
// the fixtures' 8 (untied) and 24 (qwen3), and 40, 80, 96 (72..128 run on the D = 128 kernels, 40 on 64), with
// sequences that end inside and across tiles; forward, backward and strided head views, every variant.
TEST(GpuAttention, PaddedHeadDimsMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(47);
  check_case(*cpu, *gpu, {4, 2, 8, {7, 13, 20}}, rng);
  check_case(*cpu, *gpu, {4, 2, 24, {1, 63, 65, 3}}, rng);
  check_case(*cpu, *gpu, {6, 3, 40, {130, 7}}, rng);
  check_case(*cpu, *gpu, {8, 2, 80, {127, 129, 1}}, rng);
  check_case(*cpu, *gpu, {6, 2, 96, {64, 200}}, rng);
}

TEST(GpuAttention, PaddedHeadDimStridedViewsMatchPacked) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(48);
  check_strided_case(*gpu, {4, 2, 8, {7, 13, 20}}, rng);
  check_strided_case(*gpu, {4, 2, 24, {1, 63, 65}}, rng);
  check_strided_case(*gpu, {8, 2, 80, {127, 129, 1}}, rng);
}

#if defined(QSFT_HAVE_CUDA)
// The head dims the CUDA attention takes (host code: runs without a GPU too, in a CUDA build).
TEST(GpuAttention, SupportsEveryMultipleOf8UpTo128) {
  for (int64_t D = 0; D <= 264; ++D)
    EXPECT_EQ(cuda::attention_supports_head_dim(D), D >= 8 && D <= 128 && D % 8 == 0) << "head_dim " << D;
}
#endif

// Above kAttentionMaxHeadDim, or not a multiple of 8: one clear error naming the head dim, nothing launched.
TEST(GpuAttention, UnsupportedHeadDimIsAnError) {
  QSFT_REQUIRE_GPU();
  for (int64_t D : {int64_t(136), int64_t(256), int64_t(20)}) {
    OpsLayout lg(*gpu, {4});
    OpsTensor q(*gpu, DType::BF16, {4, 2, D}), k(*gpu, DType::BF16, {4, 1, D}), v(*gpu, DType::BF16, {4, 1, D});
    OpsTensor out(*gpu, DType::BF16, {4, 2, D}), lse(*gpu, DType::F32, {2, 4});
    try {
      gpu->attention_fwd(q.t, k.t, v.t, lg.seq, out.t, lse.t);
      ADD_FAILURE() << "head_dim " << D << " ran";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("head_dim"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(std::to_string(D)), std::string::npos) << e.what();
    }
  }
}

TEST(GpuAttention, UnknownEnvironmentValueIsAnError) {
  QSFT_REQUIRE_GPU();
  OpsLayout lg(*gpu, {4});
  OpsTensor q(*gpu, DType::BF16, {4, 2, 64}), k(*gpu, DType::BF16, {4, 1, 64}), v(*gpu, DType::BF16, {4, 1, 64});
  OpsTensor out(*gpu, DType::BF16, {4, 2, 64}), lse(*gpu, DType::F32, {2, 4});
  for (const char* var : {"QSFT_ATTENTION", "QSFT_ATTENTION_TILES"}) {
    const ScopedEnv bad(var, "flash9");
    EXPECT_THROW(gpu->attention_fwd(q.t, k.t, v.t, lg.seq, out.t, lse.t), std::exception) << var;
  }
}

}  // namespace
}  // namespace qsft::test
