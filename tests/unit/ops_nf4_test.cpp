// The frozen Linear ops over a 4-bit weight (QLoRA) on the CPU reference: linear and linear_dgrad with an NF4/FP4
// weight (plain or double-quantized, one part, the two of the fused gate/up or the three unequal ones of the fused
// q/k/v) give the bits of the same ops over
// the weight dequantized as bitsandbytes dequantizes it (kernels/nf4.h), which is what Ops::dequantize returns.
#include <gtest/gtest.h>

#include <random>

#include "kernels/nf4.h"
#include "ops_test_util.h"
#include "quant4_test_util.h"

namespace qsft::test {
namespace {

// The reference: each part (of part_rows[p] rows of `in` values) quantized and dequantized by kernels/nf4.h alone.
std::vector<float> reference_dequant(const std::vector<float>& values, const WeightQuant& q,
                                     const std::vector<int64_t>& part_rows, int64_t in) {
  const cpu::Quant4Type t = q.format == WeightFormat::nf4 ? cpu::Quant4Type::nf4 : cpu::Quant4Type::fp4;
  std::vector<float> out(values.size());
  int64_t first = 0;
  for (int64_t rows : part_rows) {
    const int64_t n = rows * in, nb = n / 64;
    std::vector<float> absmax(static_cast<size_t>(nb)), absmax2(static_cast<size_t>(nb));
    std::vector<uint8_t> codes(static_cast<size_t>(n / 2)), qabsmax(static_cast<size_t>(nb));
    cpu::quantize_4bit(values.data() + first, n, t, codes.data(), absmax.data());
    if (q.double_quant) {
      const float offset = cpu::absmax_offset(absmax.data(), nb);
      cpu::quantize_absmax(absmax.data(), nb, offset, qabsmax.data(), absmax2.data());
      cpu::dequantize_absmax(qabsmax.data(), absmax2.data(), nb, offset, absmax.data());
    }
    cpu::dequantize_4bit(codes.data(), absmax.data(), n, t, out.data() + first);
    first += n;
  }
  return out;
}

// Parts: one Linear; gate/up (two equal); q/k/v (three unequal, q's 516 blocks of 64 not a multiple of the 256
// absmax values an absmax2 covers, so k's absmax2 starts where q's partial block of 256 ends).
TEST(OpsNf4, LinearAndDgradEqualTheDenseOpsOverTheDequantizedWeight) {
  auto ops = make_cpu_ops();
  const int64_t T = 9, in = 96;
  std::mt19937 rng(17);
  for (WeightFormat f : {WeightFormat::nf4, WeightFormat::fp4})
    for (bool dq : {false, true})
      for (const std::vector<int64_t>& parts : std::vector<std::vector<int64_t>>{{40}, {20, 20}, {344, 8, 8}}) {
        SCOPED_TRACE(std::string(weight_format_name(f)) + (dq ? " double-quant" : "") + " parts " +
                     std::to_string(parts.size()));
        const WeightQuant q{f, dq};
        int64_t out = 0;
        for (int64_t r : parts) out += r;
        const std::vector<float> values = random_uniform(size_t(out * in), rng, -0.1f, 0.1f);
        Quant4Linear Q(*ops, values, parts, in, q, DType::F32);

        F32 dense({out, in});
        ops->dequantize(Q.W, dense.t);
        EXPECT_EQ(dense.values(), reference_dequant(values, q, parts, in));

        F32 x({T, in}), y({T, out}), y_ref({T, out}), dy({T, out}), dx({T, in}), dx_ref({T, in});
        x.set(random_uniform(x.size(), rng));
        dy.set(random_uniform(dy.size(), rng));
        ops->linear(x.t, Q.W, y.t);
        ops->linear(x.t, LinearWeight{dense.t, {}}, y_ref.t);
        EXPECT_EQ(y.values(), y_ref.values());
        ops->linear_dgrad(dy.t, Q.W, dx.t, false);
        ops->linear_dgrad(dy.t, LinearWeight{dense.t, {}}, dx_ref.t, false);
        EXPECT_EQ(dx.values(), dx_ref.values());
        ops->linear_dgrad(dy.t, Q.W, dx.t, true);  // accumulate
        ops->linear_dgrad(dy.t, LinearWeight{dense.t, {}}, dx_ref.t, true);
        EXPECT_EQ(dx.values(), dx_ref.values());
      }
}

// The double quantization of a two-part weight keeps one offset per part (bitsandbytes quantizes gate_proj and
// up_proj as two tensors): parts of different scales get different offsets.
TEST(OpsNf4, EachPartHasItsOwnOffset) {
  auto ops = make_cpu_ops();
  std::mt19937 rng(5);
  std::vector<float> values = random_uniform(size_t(64 * 128), rng, -0.1f, 0.1f);
  for (size_t i = values.size() / 2; i < values.size(); ++i) values[i] *= 10;
  Quant4Linear Q(*ops, values, 64, 128, {WeightFormat::nf4, true}, 2, DType::F32);
  EXPECT_GT(Q.W.q.offset[1], 5 * Q.W.q.offset[0]);
}

TEST(OpsNf4, ABlockThatDoesNotFitIsAnInputError) {
  Arena measure;
  EXPECT_THROW(carve_linear(measure, 3, 20, false, DType::F32, {WeightFormat::nf4, false}), InputError);
  EXPECT_THROW(carve_linear(measure, 64, 3, false, DType::F32, {WeightFormat::nf4, false}), InputError);
  EXPECT_NO_THROW(carve_linear(measure, 2, 32, false, DType::F32, {WeightFormat::nf4, false}));
}

}  // namespace
}  // namespace qsft::test
