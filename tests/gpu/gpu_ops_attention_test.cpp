// CUDA flash-style attention, forward and backward, against the CPU reference on fresh random bf16 inputs:
// head_dim 16 (the tiny fixture), 64 (Qwen2.5-0.5B: 14 query / 2 kv heads) and 128 (7B: 28 / 4), GQA, packed
// sequences of odd lengths (single tokens, tile-straddling boundaries), and a bitwise repeat of the backward.
#include "tests/gpu/gpu_test_util.h"

namespace qsft::test {
namespace {

struct AttnCase {
  int64_t n, nkv, D;
  std::vector<int> lengths;
};

std::string describe(const AttnCase& c) {
  std::string s = "n=" + std::to_string(c.n) + " nkv=" + std::to_string(c.nkv) + " D=" + std::to_string(c.D) + " seqs=";
  for (int l : c.lengths) s += std::to_string(l) + ",";
  return s;
}

void check_case(Ops& cpu, Ops& gpu, const AttnCase& k, std::mt19937& rng) {
  OpsLayout lc(cpu, k.lengths), lg(gpu, k.lengths);
  const int64_t T = lc.total;
  const DType B = DType::BF16;
  const std::string tag = describe(k);
  Both q(cpu, gpu, B, {T, k.n, k.D}, random_uniform(size_t(T * k.n * k.D), rng, -2.0f, 2.0f));
  Both kk(cpu, gpu, B, {T, k.nkv, k.D}, random_uniform(size_t(T * k.nkv * k.D), rng, -2.0f, 2.0f));
  Both v(cpu, gpu, B, {T, k.nkv, k.D}, random_uniform(size_t(T * k.nkv * k.D), rng));
  Both out(cpu, gpu, B, {T, k.n, k.D}), lse(cpu, gpu, DType::F32, {k.n, T});
  cpu.attention_fwd(q.c.t, kk.c.t, v.c.t, lc.seq, out.c.t, lse.c.t);
  gpu.attention_fwd(q.g.t, kk.g.t, v.g.t, lg.seq, out.g.t, lse.g.t);
  // Tolerances: a numpy model of these kernels' roundings (bf16 P and dS, bf16 stores) gives rel. L2 errors of
  // ~2e-3 (out) and ~3e-3 (dq, dk, dv), max-abs errors ~5e-3 of the largest value, lse ~1e-7.
  out.expect_close(5e-3, "attention out " + tag);
  out.expect_max_close(2e-2, "attention out (worst element) " + tag);
  lse.expect_close(1e-4, "attention lse " + tag);

  // The backward runs on each backend's own forward outputs (as the model does), the same dout.
  Both dout(cpu, gpu, B, {T, k.n, k.D}, random_uniform(size_t(T * k.n * k.D), rng));
  Both dq(cpu, gpu, B, {T, k.n, k.D}), dk(cpu, gpu, B, {T, k.nkv, k.D}), dv(cpu, gpu, B, {T, k.nkv, k.D});
  cpu.attention_bwd(dout.c.t, q.c.t, kk.c.t, v.c.t, out.c.t, lse.c.t, lc.seq, dq.c.t, dk.c.t, dv.c.t);
  gpu.attention_bwd(dout.g.t, q.g.t, kk.g.t, v.g.t, out.g.t, lse.g.t, lg.seq, dq.g.t, dk.g.t, dv.g.t);
  dq.expect_close(1e-2, "attention dq " + tag);
  dk.expect_close(1e-2, "attention dk " + tag);
  dv.expect_close(1e-2, "attention dv " + tag);
  dq.expect_max_close(2e-2, "attention dq (worst element) " + tag);
  dk.expect_max_close(2e-2, "attention dk (worst element) " + tag);
  dv.expect_max_close(2e-2, "attention dv (worst element) " + tag);

  const std::vector<float> dq1 = dq.g.get(), dk1 = dk.g.get(), dv1 = dv.g.get();
  dq.g.poison();
  dk.g.poison();
  dv.g.poison();
  gpu.attention_bwd(dout.g.t, q.g.t, kk.g.t, v.g.t, out.g.t, lse.g.t, lg.seq, dq.g.t, dk.g.t, dv.g.t);
  EXPECT_EQ(dq.g.get(), dq1) << "deterministic dq " << tag;
  EXPECT_EQ(dk.g.get(), dk1) << "deterministic dk " << tag;
  EXPECT_EQ(dv.g.get(), dv1) << "deterministic dv " << tag;
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
}

TEST(GpuAttention, Qwen7bShapesMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(43);
  check_case(*cpu, *gpu, {28, 4, 128, {3, 200, 129}}, rng);
}

}  // namespace
}  // namespace qsft::test
