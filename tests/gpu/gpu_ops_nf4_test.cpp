// QLoRA's 4-bit weights on the GPU against the CPU reference, on fresh random weights and inputs with poisoned
// outputs: the dequantize kernel gives the CPU's bits (F32 out) and their bf16 rounding (BF16 out), for NF4 and FP4,
// plain and double-quantized, one part, the two parts of a fused gate/up and the three unequal ones of a fused q/k/v;
// linear and linear_dgrad over a 4-bit weight (dequantized into the weight scratch chunk by chunk of rows, each then a
// cuBLASLt GEMM) match the CPU ops within bf16 tolerance.
#include "tests/gpu/gpu_test_util.h"
#include "tests/unit/quant4_test_util.h"

namespace qsft::test {
namespace {

struct Case {
  WeightFormat format;
  bool double_quant;
  std::vector<int64_t> part_rows;  // one part; gate/up's two; q/k/v's three unequal ones
  int64_t in;
  int64_t out = 0;  // the sum of part_rows
};

std::string describe(const Case& k) {
  return std::string(weight_format_name(k.format)) + (k.double_quant ? "+dq" : "") + " parts " +
         std::to_string(k.part_rows.size()) + " [" + std::to_string(k.out) + ", " + std::to_string(k.in) + "]";
}

std::vector<Case> cases() {
  std::vector<Case> v;
  for (WeightFormat f : {WeightFormat::nf4, WeightFormat::fp4})
    for (bool dq : {false, true}) {
      v.push_back({f, dq, {96}, 200});
      v.push_back({f, dq, {512, 512}, 896});  // a fused gate/up with 2 x 28 absmax2 blocks
      v.push_back({f, dq, {344, 8, 8}, 96});  // a fused q/k/v: q's 516 absmax are 2 full absmax2 blocks + 4
    }
  v.push_back({WeightFormat::nf4, true, {896}, 896});            // 0.5B's o_proj
  v.push_back({WeightFormat::nf4, true, {896, 128, 128}, 896});  // 0.5B's fused q/k/v
  // 0.5B's gate/up: 17 MB in bf16, over kCudaWeightScratchBytes: the linear ops take it in two chunks of rows.
  v.push_back({WeightFormat::nf4, true, {4864, 4864}, 896});
  for (Case& k : v)
    for (int64_t r : k.part_rows) k.out += r;
  return v;
}

TEST(GpuNf4, DequantizeGivesTheCpuBits) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(41);
  for (const Case& k : cases()) {
    const std::vector<float> values = random_uniform(size_t(k.out * k.in), rng, -0.05f, 0.05f);
    const WeightQuant q{k.format, k.double_quant};
    Quant4Linear c(*cpu, values, k.part_rows, k.in, q, DType::F32);
    OpsTensor want(*cpu, DType::F32, {k.out, k.in});
    cpu->dequantize(c.W, want.t);
    const std::vector<float> ref = want.get();
    for (DType dt : {DType::F32, DType::BF16}) {
      Quant4Linear g(*gpu, values, k.part_rows, k.in, q, dt);
      OpsTensor got(*gpu, dt, {k.out, k.in});
      gpu->dequantize(g.W, got.t);
      const std::vector<float> v = read_gpu_result(got, "dequantize " + describe(k));
      const std::vector<float> exp = as_stored(ref, dt);
      size_t differ = 0;
      for (size_t i = 0; i < v.size(); ++i) differ += std::memcmp(&v[i], &exp[i], 4) != 0;
      print_measures("dequantize " + describe(k) + " -> " + dtype_name(dt), measure(v, exp), "elements differing",
                     double(differ), 0);
      EXPECT_EQ(differ, 0u) << describe(k) << " " << dtype_name(dt);
    }
  }
}

TEST(GpuNf4, LinearAndDgradMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(42);
  const int64_t T = 77;
  for (const Case& k : cases()) {
    const std::vector<float> values = random_uniform(size_t(k.out * k.in), rng, -0.05f, 0.05f);
    const WeightQuant q{k.format, k.double_quant};
    Quant4Linear c(*cpu, values, k.part_rows, k.in, q, DType::F32);
    Quant4Linear g(*gpu, values, k.part_rows, k.in, q, DType::BF16);
    // bf16 inputs on both sides, so the comparison sees only the GEMM's rounding.
    Both x(*cpu, *gpu, DType::BF16, {T, k.in}, random_uniform(size_t(T * k.in), rng));
    Both dy(*cpu, *gpu, DType::BF16, {T, k.out}, random_uniform(size_t(T * k.out), rng));
    OpsTensor y_c(*cpu, DType::F32, {T, k.out}), y_g(*gpu, DType::BF16, {T, k.out});
    OpsTensor dx_c(*cpu, DType::F32, {T, k.in}), dx_g(*gpu, DType::BF16, {T, k.in});
    cpu->linear(x.c.t, c.W, y_c.t);
    gpu->linear(x.g.t, g.W, y_g.t);
    expect_close(read_gpu_result(y_g, "linear " + describe(k)), y_c.get(), tolerance(DType::BF16),
                 "linear " + describe(k));
    cpu->linear_dgrad(dy.c.t, c.W, dx_c.t, false);
    gpu->linear_dgrad(dy.g.t, g.W, dx_g.t, false);
    expect_close(read_gpu_result(dx_g, "linear_dgrad " + describe(k)), dx_c.get(), tolerance(DType::BF16),
                 "linear_dgrad " + describe(k));
  }
}

}  // namespace
}  // namespace qsft::test
