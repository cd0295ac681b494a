// CPU elementwise ops, reductions, counter-based randomness (dropout, NEFTune), backend memory, and the CUDA entry
// points of a build without CUDA.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>

#include "kernels/rng.h"
#include "tests/unit/ops_test_util.h"

namespace qsft::test {
namespace {

TEST(OpsElementwise, AddAndScale) {
  auto ops = make_cpu_ops();
  std::mt19937 rng(51);
  const std::vector<float> a = random_uniform(1000, rng), b = random_uniform(1000, rng);
  F32 y({10, 100}), x({1000});
  y.set(a);
  x.set(b);
  ops->add_inplace(y.t, x.t);
  ops->scale_inplace(y.t, -0.5f);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(y[i], (a[i] + b[i]) * -0.5f);
}

TEST(OpsSumSquares, MatchesDoubleSumAndIgnoresThreadCount) {
  auto ops = make_cpu_ops();
  std::mt19937 rng(53);
  const int64_t n = 100003;  // many reduction blocks and a ragged last one
  F32 x({n});
  x.set(random_uniform(size_t(n), rng, -3.0f, 3.0f));
  double want = 0.0;
  for (size_t i = 0; i < size_t(n); ++i) want += double(x[i]) * x[i];
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one_thread = ops->sum_squares(x.t);
  omp_set_num_threads(2);
  const double two_threads = ops->sum_squares(x.t);
  omp_set_num_threads(threads);
  EXPECT_EQ(one_thread, two_threads);  // bit-identical
  EXPECT_NEAR(one_thread, want, 1e-12 * want);
}

TEST(OpsDropout, KeepsOneMinusPScaledAndIsAFunctionOfTheSeed) {
  auto ops = make_cpu_ops();
  const int64_t n = 200000;
  const float p = 0.1f;
  std::mt19937 rng(55);
  F32 x({n}), y({n}), y_again({n}), y_other({n});
  x.set(random_uniform(size_t(n), rng, 0.5f, 1.5f));  // nonzero, so a zero output means dropped
  ops->dropout(x.t, p, 1234, y.t);
  ops->dropout(x.t, p, 1234, y_again.t);
  ops->dropout(x.t, p, 1235, y_other.t);
  int64_t dropped = 0;
  for (size_t i = 0; i < size_t(n); ++i) {
    if (y[i] == 0.0f)
      ++dropped;
    else
      EXPECT_EQ(y[i], x[i] * (1.0f / (1.0f - p))) << i;
  }
  const double sigma = std::sqrt(p * (1.0 - p) / double(n));
  EXPECT_NEAR(double(dropped) / double(n), p, 5.0 * sigma);
  EXPECT_EQ(y.values(), y_again.values());
  EXPECT_NE(y.values(), y_other.values());

  ops->dropout(x.t, 0.0f, 1234, y.t);
  EXPECT_EQ(y.values(), x.values());
  EXPECT_THROW(ops->dropout(x.t, 1.0f, 1234, y.t), std::logic_error);
}

TEST(OpsDropout, InPlaceEqualsOutOfPlace) {
  auto ops = make_cpu_ops();
  std::mt19937 rng(57);
  F32 x({999}), y({999});
  x.set(random_uniform(999, rng));
  ops->dropout(x.t, 0.3f, 77, y.t);
  ops->dropout(x.t, 0.3f, 77, x.t);
  EXPECT_EQ(x.values(), y.values());
}

// dropout_add(y, x) is y + dropout(x) with dropout's own mask, in one pass (the LoRA backward's dx path).
TEST(OpsDropout, DropoutAddEqualsDropoutThenAdd) {
  auto ops = make_cpu_ops();
  std::mt19937 rng(58);
  const int64_t n = 4099;
  F32 x({n}), y({n}), want({n}), d({n});
  x.set(random_uniform(size_t(n), rng));
  y.set(random_uniform(size_t(n), rng));
  want.set(y.values());
  ops->dropout(x.t, 0.2f, 91, d.t);
  ops->add_inplace(want.t, d.t);
  ops->dropout_add(y.t, x.t, 0.2f, 91);
  EXPECT_EQ(y.values(), want.values());
  EXPECT_THROW(ops->dropout_add(y.t, y.t, 0.2f, 91), std::logic_error);
}

// The masks' 16-bit draws: element i is field i % 4 of hash(seed, i / 4), so a kernel hashes once per 4 elements,
// and the blocked form (uniforms16<8> from a multiple of 4) gives the per-element values.
TEST(Rng, Uniform16TakesFourDrawsFromOneHash) {
  const uint64_t seed = 1234;
  for (uint64_t g = 0; g < 100; ++g) {
    const uint64_t h = rng::hash(seed, g);
    for (int k = 0; k < 4; ++k) {
      const float u = rng::uniform16(seed, 4 * g + uint64_t(k));
      EXPECT_EQ(u, float((h >> (16 * k)) & 0xFFFF) / 65536.0f);
      EXPECT_GE(u, 0.0f);
      EXPECT_LT(u, 1.0f);
    }
  }
  float block[8], one[1];
  rng::uniforms16<8>(seed, 40, block);
  for (int k = 0; k < 8; ++k) {
    rng::uniforms16<1>(seed, uint64_t(40 + k), one);
    EXPECT_EQ(block[k], one[0]);
    EXPECT_EQ(block[k], rng::uniform16(seed, uint64_t(40 + k)));
  }
}

// The kernels' keep test (an integer field against keep_threshold16(p)) is the CPU op's uniform16 >= p, for every
// 16-bit field and for p on the 2^-16 grid, next to it on either side, tiny, near 1 and typical.
TEST(Rng, KeepThresholdGivesTheFloatTestsMaskForEveryField) {
  std::vector<float> ps = {1e-9f, 1e-5f, 0.01f, 0.05f, 0.1f, 0.2f, 0.3f, 0.5f, 0.9f, 0.99999f, 0.999999f};
  for (uint32_t k : {1u, 2u, 3277u, 32768u, 65535u}) {
    const float on_grid = float(k) / 65536.0f;
    ps.insert(ps.end(), {on_grid, std::nextafter(on_grid, 0.0f), std::nextafter(on_grid, 1.0f)});
  }
  for (float p : ps) {
    const uint32_t threshold = rng::keep_threshold16(p);
    EXPECT_LE(threshold, 65536u);
    for (uint32_t f = 0; f < 65536; ++f) {
      const uint64_t h = uint64_t(f) << 32;  // field 2
      ASSERT_EQ(rng::kept16(h, 2, threshold), rng::field16(h, 2) >= p) << "p " << p << " field " << f;
    }
  }
  EXPECT_EQ(rng::keep_threshold16(0.0f), 0u);  // p 0 keeps everything
  const uint64_t seed = 777, mixed = rng::mix64(seed);
  for (float p : {0.05f, 0.5f}) {
    const uint32_t threshold = rng::keep_threshold16(p);
    bool block[8], one[1];
    for (uint64_t i = 0; i < 4000; i += 8) {
      rng::keeps16<8>(mixed, i, threshold, block);
      for (int k = 0; k < 8; ++k) {
        rng::keeps16<1>(mixed, i + uint64_t(k), threshold, one);
        EXPECT_EQ(block[k], rng::uniform16(seed, i + uint64_t(k)) >= p);
        EXPECT_EQ(one[0], block[k]);
      }
    }
  }
  EXPECT_EQ(rng::hash_mixed(mixed, 12345), rng::hash(seed, 12345));
}

TEST(OpsNeftune, NoiseIsBoundedCenteredAndDeterministic) {
  auto ops = make_cpu_ops();
  const int64_t n = 100000;
  const float scale = 0.25f;
  std::mt19937 rng(59);
  const std::vector<float> x0 = random_uniform(size_t(n), rng);
  F32 a({n}), b({n}), c({n});
  a.set(x0);
  b.set(x0);
  c.set(x0);
  ops->neftune_noise(a.t, scale, 99);
  ops->neftune_noise(b.t, scale, 99);
  ops->neftune_noise(c.t, scale, 100);
  EXPECT_EQ(a.values(), b.values());
  EXPECT_NE(a.values(), c.values());
  double sum = 0.0, max_abs = 0.0;
  for (size_t i = 0; i < size_t(n); ++i) {
    const double noise = double(a[i]) - x0[i];
    EXPECT_LE(std::fabs(noise), scale * (1.0 + 1e-6)) << i;
    sum += noise;
    max_abs = std::max(max_abs, std::fabs(noise));
  }
  EXPECT_GT(max_abs, 0.99 * scale);                                     // the whole range is used
  EXPECT_NEAR(sum / double(n), 0.0, 5.0 * scale / std::sqrt(3.0 * n));  // mean 0, sd scale / sqrt(3)
}

TEST(OpsMemory, AllocatesZeroedAlignedMemory) {
  auto ops = make_cpu_ops();
  for (size_t bytes : {size_t(0), size_t(1), size_t(1000)}) {
    auto* p = static_cast<unsigned char*>(ops->alloc_bytes(bytes));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
    for (size_t i = 0; i < bytes; ++i) ASSERT_EQ(p[i], 0) << i;
    ops->free_bytes(p);
  }
  EXPECT_EQ(ops->device(), Device::CPU);
}

TEST(OpsMemory, CopiesTensors) {
  auto ops = make_cpu_ops();
  std::mt19937 rng(61);
  F32 src({4, 25}), dst({100});
  src.set(random_uniform(100, rng));
  ops->copy(dst.t, src.t);
  EXPECT_EQ(dst.values(), src.values());
  ops->zero(dst.t);
  EXPECT_EQ(dst.values(), std::vector<float>(100, 0.0f));
}

// A strided view (q's heads in a fused QKV row) copied into a packed tensor and back into other columns, row by row;
// a copy between views of different rows is refused.
TEST(OpsMemory, CopiesStridedViewsRowByRow) {
  auto ops = make_cpu_ops();
  F32 wide({3, 10}), packed({3, 2, 2});
  for (size_t i = 0; i < wide.size(); ++i) wide[i] = float(i);
  ops->copy(packed.t, wide.t.cols(2, 6).view({3, 2, 2}));
  EXPECT_EQ(packed.values(), std::vector<float>({2, 3, 4, 5, 12, 13, 14, 15, 22, 23, 24, 25}));
  Tensor dst = wide.t.cols(6, 10);
  ops->copy(dst, packed.t);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 10; ++c)
      EXPECT_EQ(wide[size_t(r * 10 + c)], float(r * 10 + (c < 6 ? c : c - 4))) << r << ", " << c;
  Tensor two_rows = wide.t.rows(0, 2).cols(0, 4);
  EXPECT_THROW(ops->copy(two_rows, packed.t), std::logic_error);
}

#if !defined(QSFT_HAVE_CUDA)
TEST(OpsCuda, BuildWithoutCudaSaysSo) {
  EXPECT_FALSE(cuda_available());
  EXPECT_THROW(make_cuda_ops(), InputError);
}
#endif

}  // namespace
}  // namespace qsft::test
