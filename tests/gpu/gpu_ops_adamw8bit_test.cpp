// The 8-bit AdamW (optim "adamw_8bit") on the GPU against the CPU reference: the same optimizer, the same inputs,
// five steps; parameters, codes and absmax must be the same bits (kernels/adamw8bit_math.h is shared and every
// device operation is explicitly rounded). Sizes: one partial block, blocks and a partial last one, many blocks;
// the weight decay ends inside a block (full fine-tuning's no-decay group).
#include <random>

#include "engine/dist/comm.h"
#include "engine/train/adamw.h"
#include "tests/gpu/gpu_test_util.h"

namespace qsft::test {
namespace {

struct Run {
  std::unique_ptr<AdamWOptimizer> opt;
  Tensor p, g;
};

TEST(GpuAdamW8bit, StepsEqualCpuBitForBit) {
  QSFT_REQUIRE_GPU();
  for (int64_t n : {int64_t(100), int64_t(4097), int64_t(896 * 257 + 3)}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    std::mt19937 rng(21);
    const std::vector<float> p0 = random_uniform(size_t(n), rng);
    OpsTensor pc(*cpu, DType::F32, {n}), pg(*gpu, DType::F32, {n}), gc(*cpu, DType::F32, {n}),
        gg(*gpu, DType::F32, {n});
    pc.set(p0);
    pg.set(p0);
    const int64_t decay_end = n * 3 / 5;
    AdamWOptimizer oc(*cpu, n, {0, n}, "adamw_8bit", decay_end), og(*gpu, n, {0, n}, "adamw_8bit", decay_end);
    const AdamWSettings s{1e-3, 0.9, 0.999, 1e-8, 0.01};
    for (int step = 1; step <= 5; ++step) {
      std::vector<float> g = random_uniform(size_t(n), rng, -0.1f, 0.1f);
      for (int64_t i = 0; i < std::min<int64_t>(n, 300); ++i) g[size_t(i)] = 0.0f;  // an all-zero block
      gc.set(g);
      gg.set(g);
      oc.step(pc.t, gc.t, s, 1e-3);
      og.step(pg.t, gg.t, s, 1e-3);
    }
    Checkpoint c, d;
    EXPECT_EQ(read_gpu_result(pg, "adamw8bit p"), pc.get());
    oc.save(c, *make_comm(Launch{}, *cpu), gc.t);  // the spent gradients are the gather buffer
    og.save(d, *make_comm(Launch{}, *gpu), gg.t);
    EXPECT_EQ(d.exp_avg_codes, c.exp_avg_codes);
    EXPECT_EQ(d.exp_avg_sq_codes, c.exp_avg_sq_codes);
    EXPECT_EQ(d.exp_avg_absmax, c.exp_avg_absmax);
    EXPECT_EQ(d.exp_avg_sq_absmax, c.exp_avg_sq_absmax);
  }
}

}  // namespace
}  // namespace qsft::test
