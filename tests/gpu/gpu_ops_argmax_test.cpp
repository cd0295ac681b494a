// CUDA argmax_rows (greedy decoding on the device) against the CPU reference on fresh random logits, poisoned
// outputs: Qwen's vocabulary (151936) at 1, 8 and 32 rows, a small vocabulary, planted ties (the first maximum
// wins), a row of -inf but one value, a row of equal values. Exact: an index.
#include "tests/gpu/gpu_test_util.h"

namespace qsft::test {
namespace {

void check_rows(Ops& cpu, Ops& gpu, int64_t R, int64_t V, std::mt19937& rng) {
  std::vector<float> x = random_uniform(size_t(R * V), rng, -20.0f, 20.0f);
  std::uniform_int_distribution<int64_t> col(0, V - 1);
  for (int64_t r = 0; r < R; ++r) {
    if (r % 3 == 0)
      for (int k = 0; k < 3; ++k) x[size_t(r * V + col(rng))] = 30.0f;  // ties
    if (r % 5 == 1) {
      std::fill(x.begin() + r * V, x.begin() + (r + 1) * V, -INFINITY);
      x[size_t(r * V + col(rng))] = -1.0f;
    }
    if (r % 7 == 2) std::fill(x.begin() + r * V, x.begin() + (r + 1) * V, 0.25f);
  }
  Both logits(cpu, gpu, DType::F32, {R, V}, x), out(cpu, gpu, DType::I32, {R});
  cpu.argmax_rows(logits.c.t, out.c.t);
  gpu.argmax_rows(logits.g.t, out.g.t);
  const std::vector<float> want = out.c.get(), got = read_gpu_result(out.g, "argmax_rows");
  for (int64_t r = 0; r < R; ++r)
    EXPECT_EQ(got[size_t(r)], want[size_t(r)]) << "argmax_rows R=" << R << " V=" << V << " row " << r;
  std::printf("argmax_rows R=%lld V=%lld: %lld rows equal\n", (long long)R, (long long)V, (long long)R);
}

TEST(GpuOpsArgmax, MatchesCpuReference) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(1603);
  for (int64_t R : {1, 8, 32}) check_rows(*cpu, *gpu, R, 151936, rng);
  check_rows(*cpu, *gpu, 9, 37, rng);
}

}  // namespace
}  // namespace qsft::test
