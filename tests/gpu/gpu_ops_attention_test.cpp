// CUDA attention, forward and backward, against the CPU reference on fresh random bf16 inputs, for every
// implementation the op can run (QSFT_ATTENTION=wmma, =mma with the device's tiles, =mma with the "large" tiles and
// the 99 KiB "small" ones forced by QSFT_ATTENTION_TILES, =mma with the atomic-dQ fast backward
// QSFT_ATTENTION_BWD=atomic (the device's tiles and small), the only one not checked for bitwise repeats; =wgmma
// and its atomic-dQ mode on compute capability 9.0, where wgmma is the default): head_dim 16/32, 64 (Qwen2.5-0.5B:
// 14 query / 2 kv heads), 128 (7B: 28 / 4) and the padded ones between (8 and 24 of the test fixtures, 40, 80, 96:
// zero-filled columns), GQA, packed sequences of odd lengths (single tokens, many short sequences, lengths around
// the 64/128-row tiles, 4 x 4096: there the CPU reference computes one sequence and one kv group), a bitwise repeat
// of the backward. Every comparison prints max abs error, rel. L2 error and cosine, so one run shows which variant
// and which output is off. Strided head views (a fused QKV buffer) against the packed op, bitwise.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

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

// Under compute-sanitizer (small_shapes_only()) a case shrinks to one kv head with at most 2 query heads and at most
// 24 sequences of at most 130 tokens (still two 64-row tiles, single tokens and GQA).
AttnCase sized(AttnCase c) {
  if (!small_shapes_only()) return c;
  c.n = std::min<int64_t>(c.n / c.nkv, 2);
  c.nkv = 1;
  if (c.lengths.size() > 24) c.lengths.resize(24);
  for (int& l : c.lengths) l = std::min(l, 130);
  return c;
}

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
                                 {"mma-atomic-dq", "mma", "", "atomic"},
                                 {"mma-small-atomic-dq", "mma", "small", "atomic"},
                                 {"wgmma", "wgmma", "", ""},
                                 {"wgmma-atomic-dq", "wgmma", "", "atomic"}};
constexpr int kPortableVariants = 6;  // the rest (wgmma) run only on compute capability 9.0 (sm_90a)

// Why this device cannot run the wgmma variants; empty when it can (compute capability 9.0, not the stand-in).
std::string wgmma_refusal() {
#if defined(QSFT_HAVE_CUDA)
  if (!standin_mode()) return cuda::attention_wgmma_unsupported_reason("the wgmma attention");
#endif
  return "the wgmma attention needs the CUDA backend on compute capability 9.0";
}

// The variants a run checks: QSFT_TEST_ATTENTION_VARIANTS, a comma list of kVariants' names (e.g. "mma" alone);
// unset or empty: every one this device runs (the wgmma ones on compute capability 9.0 only). An unknown name
// throws, naming it; a named wgmma variant this device cannot run is left out with a "skipped:" line (so the
// gpu-check stage that names it reads SKIPPED, never PASS).
std::vector<Variant> selected_variants() {
  const char* list = std::getenv("QSFT_TEST_ATTENTION_VARIANTS");
  const std::string refusal = wgmma_refusal();
  if (!list || !*list) {
    if (refusal.empty()) return {std::begin(kVariants), std::end(kVariants)};
    return {kVariants, kVariants + kPortableVariants};
  }
  std::vector<Variant> out;
  std::string rest = list;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string name = rest.substr(0, comma);
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
    const auto it = std::find_if(std::begin(kVariants), std::end(kVariants),
                                 [&](const Variant& v) { return name == v.name; });
    if (it == std::end(kVariants))
      throw std::invalid_argument("QSFT_TEST_ATTENTION_VARIANTS: unknown variant \"" + name + "\"");
    if (it - std::begin(kVariants) >= kPortableVariants && !refusal.empty()) {
      std::printf("skipped: attention variant %s: %s\n", name.c_str(), refusal.c_str());
      continue;
    }
    out.push_back(*it);
  }
  return out;
}

// Why this device cannot run variant v at head_dim D; empty when it can. Forced Large tiles at D > 64 exceed the
// 99 KiB of shared memory per block of the RTX-class GPUs (Auto takes Small there).
std::string variant_refusal(const Variant& v, int64_t D) {
#if defined(QSFT_HAVE_CUDA)
  if (!standin_mode() && std::strcmp(v.tiles, "large") == 0 &&
      !cuda::attention_mma_tiles_fit(D, cuda::AttentionTiles::Large))
    return "the Large tiles at D = " + std::to_string(D) + " exceed this device's shared memory per block";
#else
  (void)v, (void)D;
#endif
  return "";
}

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
// max abs error <= max_tol * max(max |want|, kScaleFloor).
// The floor: with single-token sequences the exact dq and dk are 0 (a softmax over one key has no gradient) and the
// GPU's rounding leaves ~3e-7; any wrong term (a key of another sequence, a stale tile) adds |dS k| ~ 0.1-1 for
// these O(1) inputs, far above kScaleFloor * max_tol = 2e-4.
constexpr double kScaleFloor = 1e-2;
void expect_match(const std::vector<float>& got, const std::vector<float>& want, double rel_tol, double max_tol,
                  const std::string& what) {
  if (standin_mode()) return;  // nothing was computed
  double worst = got.size() == want.size() ? 0.0 : INFINITY, scale = 0.0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    worst = std::isfinite(got[i]) ? std::max(worst, std::fabs(double(got[i]) - want[i])) : INFINITY;
    scale = std::max(scale, std::fabs(double(want[i])));
  }
  const double rel = rel_l2_error(got, want), cos = cosine(got, want);
  std::printf("%s %-62s max abs %.2e (max|ref| %.2e)  rel L2 %.2e  cos %.6f\n", measured_tag(), what.c_str(), worst,
              scale, rel, cos);
  EXPECT_LE(rel, rel_tol) << what;
  EXPECT_LE(worst, max_tol * std::max(scale, kScaleFloor)) << what << " (max abs error)";
}

// Rows [row0, row0 + rows) and heads [h0, h0 + nh) of a [T, H, D] tensor, as [rows, nh, D].
std::vector<float> take(const std::vector<float>& v, int64_t H, int64_t D, int64_t row0, int64_t rows, int64_t h0,
                        int64_t nh) {
  std::vector<float> out;
  out.reserve(size_t(rows * nh * D));
  for (int64_t t = row0; t < row0 + rows; ++t)
    out.insert(out.end(), v.begin() + (t * H + h0) * D, v.begin() + (t * H + h0 + nh) * D);
  return out;
}

// The part of a case the CPU reference computes: rows [row0, row0 + rows) (whole sequences `lengths`), query heads
// [h0, h0 + nh) and their kv heads [kv0, kv0 + nkv). Attention is independent per sequence and per kv group, so the
// op on the part's inputs gives exactly that part of the whole op's outputs.
struct Part {
  int64_t row0, rows, h0, nh, kv0, nkv;
  std::vector<int> lengths;

  // The part of a [T, n, D] (query side) or [T, nkv, D] (kv side) tensor of case k.
  std::vector<float> q_side(const std::vector<float>& x, const AttnCase& k) const {
    return take(x, k.n, k.D, row0, rows, h0, nh);
  }
  std::vector<float> kv_side(const std::vector<float>& x, const AttnCase& k) const {
    return take(x, k.nkv, k.D, row0, rows, kv0, nkv);
  }
  // The part of an [n, T] lse, as [nh, rows].
  std::vector<float> of_lse(const std::vector<float>& x, int64_t T) const {
    std::vector<float> out;
    for (int64_t h = h0; h < h0 + nh; ++h)
      out.insert(out.end(), x.begin() + h * T + row0, x.begin() + h * T + row0 + rows);
    return out;
  }
};
Part whole(const AttnCase& k) {
  const Packing p(k.lengths);
  return {0, p.tokens(), 0, k.n, 0, k.nkv, k.lengths};
}
// Sequence s with kv head g and its n / nkv query heads.
Part one_sequence_one_group(const AttnCase& k, size_t s, int64_t g) {
  int64_t row0 = 0;
  for (size_t i = 0; i < s; ++i) row0 += k.lengths[i];
  const int64_t group = k.n / k.nkv;
  return {row0, k.lengths[s], g * group, group, g, 1, {k.lengths[s]}};
}

// Attention's four inputs q, dout [T, n, D] and k, v [T, nkv, D], or its outputs out [T, n, D], lse [n, T],
// dq [T, n, D], dk, dv [T, nkv, D], as host values.
struct AttnInputs {
  std::vector<float> q, k, v, dout;
};
struct AttnOutputs {
  std::vector<float> out, lse, dq, dk, dv;
};

// The CPU op (forward, then backward on its own outputs) on the part `ref` of the inputs, as the GPU stores them.
AttnOutputs cpu_reference(Ops& cpu, const AttnCase& k, const Part& ref, const AttnInputs& in) {
  OpsLayout lc(cpu, ref.lengths);
  const int64_t R = ref.rows, D = k.D;
  const DType F = DType::F32;
  OpsTensor q(cpu, F, {R, ref.nh, D}), kk(cpu, F, {R, ref.nkv, D}), v(cpu, F, {R, ref.nkv, D});
  OpsTensor dout(cpu, F, {R, ref.nh, D}), out(cpu, F, {R, ref.nh, D}), lse(cpu, F, {ref.nh, R});
  OpsTensor dq(cpu, F, {R, ref.nh, D}), dk(cpu, F, {R, ref.nkv, D}), dv(cpu, F, {R, ref.nkv, D});
  q.set(round_bf16(ref.q_side(in.q, k)));
  kk.set(round_bf16(ref.kv_side(in.k, k)));
  v.set(round_bf16(ref.kv_side(in.v, k)));
  dout.set(round_bf16(ref.q_side(in.dout, k)));
  cpu.attention_fwd(q.t, kk.t, v.t, lc.seq, out.t, lse.t);
  cpu.attention_bwd(dout.t, q.t, kk.t, v.t, out.t, lse.t, lc.seq, dq.t, dk.t, dv.t);
  return {out.get(), lse.get(), dq.get(), dk.get(), dv.get()};
}

// Tolerances: a numpy model of these kernels' roundings (bf16 P and dS, bf16 stores) gives rel. L2 errors of
// ~2e-3 (out) and ~3e-3 (dq, dk, dv), max-abs errors ~5e-3 of the largest value, lse ~1e-7. The GPU runs the whole
// case; the CPU reference the part `ref` (every output of the GPU must be finite: poisoned outputs are NaN). Each
// GPU variant's backward runs on its own forward outputs (as the model does).
void check_case(Ops& cpu, Ops& gpu, const AttnCase& k, std::mt19937& rng, const Part& ref) {
  OpsLayout lg(gpu, k.lengths);
  const int64_t T = lg.total, n = k.n, nkv = k.nkv, D = k.D;
  const DType B = DType::BF16;
  const std::string tag = describe(k) + (ref.rows == T && ref.nh == n ? "" : " (CPU: one sequence, one kv group)");
  AttnInputs in;
  in.q = random_uniform(size_t(T * n * D), rng, -2.0f, 2.0f);
  in.k = random_uniform(size_t(T * nkv * D), rng, -2.0f, 2.0f);
  in.v = random_uniform(size_t(T * nkv * D), rng);
  in.dout = random_uniform(size_t(T * n * D), rng);
  const AttnOutputs want = cpu_reference(cpu, k, ref, in);
  OpsTensor q(gpu, B, {T, n, D}), kk(gpu, B, {T, nkv, D}), v(gpu, B, {T, nkv, D}), dout(gpu, B, {T, n, D});
  q.set(in.q);
  kk.set(in.k);
  v.set(in.v);
  dout.set(in.dout);
  OpsTensor out(gpu, B, {T, n, D}), lse(gpu, DType::F32, {n, T});
  OpsTensor dq(gpu, B, {T, n, D}), dk(gpu, B, {T, nkv, D}), dv(gpu, B, {T, nkv, D});
  const auto all_finite = [](const std::vector<float>& x) {
    return std::all_of(x.begin(), x.end(), [](float e) { return std::isfinite(e); });
  };
  for (const Variant& var : selected_variants()) {
    const std::string vt = std::string(var.name) + " " + tag;
    if (const std::string why = variant_refusal(var, D); !why.empty()) {
      std::printf("skipped: %s: %s\n", vt.c_str(), why.c_str());
      continue;
    }
    const ScopedEnv impl("QSFT_ATTENTION", var.impl), tiles("QSFT_ATTENTION_TILES", var.tiles),
        bwd("QSFT_ATTENTION_BWD", var.bwd);
    const bool deterministic = *var.bwd == '\0';
    for (OpsTensor* t : {&out, &lse, &dq, &dk, &dv}) t->poison();
    gpu.attention_fwd(q.t, kk.t, v.t, lg.seq, out.t, lse.t);
    const std::vector<float> out1 = out.get(), lse1 = lse.get();
    EXPECT_TRUE(all_finite(out1) && all_finite(lse1)) << "out, lse written everywhere: " << vt;
    expect_match(ref.q_side(out1, k), want.out, 5e-3, 2e-2, "out " + vt);
    expect_match(ref.of_lse(lse1, T), want.lse, 1e-4, 1e-4, "lse " + vt);
    gpu.attention_bwd(dout.t, q.t, kk.t, v.t, out.t, lse.t, lg.seq, dq.t, dk.t, dv.t);
    const std::vector<float> dq1 = dq.get(), dk1 = dk.get(), dv1 = dv.get();
    EXPECT_TRUE(all_finite(dq1) && all_finite(dk1) && all_finite(dv1)) << "dq, dk, dv written everywhere: " << vt;
    expect_match(ref.q_side(dq1, k), want.dq, 1e-2, 2e-2, "dq " + vt);
    expect_match(ref.kv_side(dk1, k), want.dk, 1e-2, 2e-2, "dk " + vt);
    expect_match(ref.kv_side(dv1, k), want.dv, 1e-2, 2e-2, "dv " + vt);

    // Bitwise repeat (the fast mode's dq is the one output allowed to differ in its last bits).
    for (OpsTensor* t : {&dq, &dk, &dv}) t->poison();
    gpu.attention_bwd(dout.t, q.t, kk.t, v.t, out.t, lse.t, lg.seq, dq.t, dk.t, dv.t);
    if (deterministic) {
      EXPECT_EQ(dq.get(), dq1) << "deterministic dq " << vt;
    }
    EXPECT_EQ(dk.get(), dk1) << "deterministic dk " << vt;
    EXPECT_EQ(dv.get(), dv1) << "deterministic dv " << vt;
  }
}
void check_case(Ops& cpu, Ops& gpu, const AttnCase& k, std::mt19937& rng) {
  check_case(cpu, gpu, sized(k), rng, whole(sized(k)));
}

// q, k, v as strided head views of one fused [T, (n + 2 nkv) D] buffer (the model's QKV projection) and dq, dk, dv
// as views of a poisoned d_qkv: for every variant, the bits of the same op on packed copies (Ops::copy of the views;
// the packed op is checked against the CPU above); the atomic-dQ mode's dq only to its run-to-run tolerance.
void check_strided_case(Ops& gpu, const AttnCase& k0, std::mt19937& rng) {
  const AttnCase k = sized(k0);
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
  for (const Variant& var : selected_variants()) {
    const std::string vt = std::string(var.name) + " " + tag;
    if (const std::string why = variant_refusal(var, D); !why.empty()) {
      std::printf("skipped: %s: %s\n", vt.c_str(), why.c_str());
      continue;
    }
    const ScopedEnv impl("QSFT_ATTENTION", var.impl), tiles("QSFT_ATTENTION_TILES", var.tiles),
        bwd("QSFT_ATTENTION_BWD", var.bwd);
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
// The GPU runs the whole case; the CPU reference (~17 s per 1024 x 1024 tokens x 28 heads, fwd + bwd, on one core:
// ~100 s on 16 cores for all of both cases) only the last sequence (rows 12288.., the largest offsets) with the last
// kv head and its query heads: 1/16 (7B) and 1/8 (0.5B) of the work, ~8 s on 16 cores.
TEST(GpuAttention, Qwen7bPacked4x4096MatchesCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(45);
  const AttnCase b7{28, 4, 128, {4096, 4096, 4096, 4096}}, b05{14, 2, 64, {4096, 4096, 4096, 4096}};
  check_case(*cpu, *gpu, b7, rng, one_sequence_one_group(b7, 3, 3));
  check_case(*cpu, *gpu, b05, rng, one_sequence_one_group(b05, 3, 1));
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

// The backward's scratch, which qwen-sft plan counts (Plan.EqualsWhatTheBackendHoldsAfterAStep), is the same for
// every implementation (mma, wmma and wgmma share the layout): delta F32 [n, T] rounded up to 256 bytes, plus in the
// atomic-dQ mode the F32 [T, n, D] dQ accumulator (host code: runs without a GPU too, in a CUDA build).
TEST(GpuAttention, BackwardScratchIsDeltaPlusTheAtomicAccumulator) {
  for (const auto& [T, n, D] : {std::tuple{16384, 28, 128}, {4097, 14, 64}, {3, 4, 24}}) {
    cuda::AttentionShape s;
    s.T = T, s.n = n, s.nkv = 2, s.D = D;
    const size_t delta = (size_t(n) * T * 4 + 255) / 256 * 256;
    EXPECT_EQ(cuda::attention_bwd_scratch_bytes(s, cuda::AttentionBwdMode::Deterministic), delta) << T;
    EXPECT_EQ(cuda::attention_bwd_scratch_bytes(s, cuda::AttentionBwdMode::AtomicDq), delta + size_t(T) * n * D * 4)
        << T;
  }
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
      ADD_FAILURE() << kHostCheck << "head_dim " << D << " ran";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("head_dim"), std::string::npos) << kHostCheck << e.what();
      EXPECT_NE(std::string(e.what()).find(std::to_string(D)), std::string::npos) << kHostCheck << e.what();
    }
  }
}

TEST(GpuAttention, UnknownEnvironmentValueIsAnError) {
  QSFT_REQUIRE_GPU();
  QSFT_SKIP_ON_STANDIN("the CUDA launchers read QSFT_ATTENTION*");
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
