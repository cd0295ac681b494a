// CUDA decode attention (new tokens of sequences over their KV cache) against the CPU reference on fresh random
// inputs, poisoned outputs: Qwen2.5-0.5B's heads (14 query / 2 kv, head_dim 64) and 7B's (28 / 4, 128), a Qwen3
// head_dim (24: not a multiple of 32), BF16 (the model's GPU dtype) and F32; rows mapped to shuffled cache slots,
// lengths from 1 (the key just written) to past the warps' split; the appended keys/values must land exactly.
// Long caches (8k and 32k positions, batch 1 and 32) go through the split-K path (on a 132-SM GPU: 2 to 76 splits);
// the 24-dim case runs whole (too short to split); several rows share a slot (chat turns: distinct lengths). Every
// comparison prints max abs error, rel. L2 error and cosine.
#include "tests/gpu/gpu_test_util.h"

namespace qsft::test {
namespace {

struct DecodeCase {
  int64_t n, nkv, D;
  std::vector<int32_t> lens;   // per row, the new token included
  std::vector<int32_t> slots;  // per row, its cache slot
  int64_t num_slots, S;
};

void check_case(Ops& cpu, Ops& gpu, const DecodeCase& k, DType dt, std::mt19937& rng) {
  const int64_t B = int64_t(k.lens.size());
  const std::string tag = "n=" + std::to_string(k.n) + "/" + std::to_string(k.nkv) + " D=" + std::to_string(k.D) +
                          " B=" + std::to_string(B) + " S=" + std::to_string(k.S) + " " + dtype_name(dt);
  const size_t cache_n = size_t(k.num_slots * k.S * k.nkv * k.D);
  Both q(cpu, gpu, dt, {B, k.n, k.D}, random_uniform(size_t(B * k.n * k.D), rng, -2.0f, 2.0f));
  Both kn(cpu, gpu, dt, {B, k.nkv, k.D}, random_uniform(size_t(B * k.nkv * k.D), rng, -2.0f, 2.0f));
  Both vn(cpu, gpu, dt, {B, k.nkv, k.D}, random_uniform(size_t(B * k.nkv * k.D), rng));
  // the caches (up to 8 x 32768 x 4 x 128 values) from the fast parallel fill
  Both kc(cpu, gpu, dt, {k.num_slots, k.S, k.nkv, k.D}, hashed_uniform(cache_n, rng(), -2.0f, 2.0f));
  Both vc(cpu, gpu, dt, {k.num_slots, k.S, k.nkv, k.D}, hashed_uniform(cache_n, rng()));
  Both slot(cpu, gpu, DType::I32, {B}), len(cpu, gpu, DType::I32, {B}), out(cpu, gpu, dt, {B, k.n, k.D});
  for (OpsTensor* t : {&slot.c, &slot.g}) t->set_i32(k.slots);
  for (OpsTensor* t : {&len.c, &len.g}) t->set_i32(k.lens);
  cpu.decode_attention(q.c.t, kn.c.t, vn.c.t, kc.c.t, vc.c.t, slot.c.t, len.c.t, out.c.t);
  gpu.decode_attention(q.g.t, kn.g.t, vn.g.t, kc.g.t, vc.g.t, slot.g.t, len.g.t, out.g.t);
  out.expect_close(tolerance(dt), "decode_attention out " + tag);
  out.expect_max_close(dt == DType::BF16 ? 2e-2 : 1e-5, "decode_attention out " + tag);
  kc.expect_max_close(0.0, "decode_attention k_cache after append " + tag);
  vc.expect_max_close(0.0, "decode_attention v_cache after append " + tag);
}

// B rows over min(B, 8) slots (rows r and r + 8 share one, with other lengths), lengths spread over [S/2, S] with a
// short row (300) and a row of one key at batch > 2.
DecodeCase long_case(int64_t n, int64_t nkv, int64_t D, int64_t B, int64_t S) {
  DecodeCase c{n, nkv, D, {}, {}, std::min<int64_t>(B, 8), S};
  for (int64_t r = 0; r < B; ++r) {
    c.slots.push_back(int32_t((r * 5 + 3) % c.num_slots));
    c.lens.push_back(int32_t(B > 2 && r == B - 1 ? 1 : B > 2 && r == B - 2 ? 300 : S - r * (S / 64) - r % 3));
  }
  return c;
}

TEST(GpuOpsDecodeAttention, MatchesCpuReference) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(1601);
  const std::vector<DecodeCase> cases = {
      {14, 2, 64, {1, 7, 300, 1025}, {4, 0, 5, 2}, 6, 1100},
      {28, 4, 128, {2, 513}, {1, 0}, 2, 600},
      {4, 2, 24, {3, 1, 40}, {2, 1, 0}, 3, 48},
  };
  for (DType dt : {DType::BF16, DType::F32})
    for (const DecodeCase& c : cases) check_case(*cpu, *gpu, c, dt, rng);
}

// Head dims off the 32-lane grid up to the limit: 8 (the untied fixture's), 80 and 256 (kDecodeAttentionMaxHeadDim).
TEST(GpuOpsDecodeAttention, OtherHeadDimsMatchCpuReference) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(1603);
  const std::vector<DecodeCase> cases = {
      {4, 2, 8, {5, 1, 33}, {0, 2, 1}, 3, 40},
      {8, 2, 80, {2, 300, 77}, {1, 0, 2}, 3, 320},
      {4, 1, 256, {1, 129}, {1, 0}, 2, 160},
  };
  for (DType dt : {DType::BF16, DType::F32})
    for (const DecodeCase& c : cases) check_case(*cpu, *gpu, c, dt, rng);
}

// "Qwen" in the name: too long for tools/gpu-check.sh's sanitizer stages (the small cases above split too).
TEST(GpuOpsDecodeAttention, QwenLongCachesMatchCpuReference) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(1602);
  for (int64_t S : {8192, 32768})
    for (int64_t B : {1, 32}) {
      check_case(*cpu, *gpu, long_case(28, 4, 128, B, S), DType::BF16, rng);
      check_case(*cpu, *gpu, long_case(14, 2, 64, B, S), DType::BF16, rng);
    }
  check_case(*cpu, *gpu, long_case(14, 2, 64, 1, 32768), DType::F32, rng);
  check_case(*cpu, *gpu, long_case(28, 4, 128, 32, 8192), DType::F32, rng);
}

}  // namespace
}  // namespace qsft::test
