// The cuBLASLt GEMM against the CPU GEMM: all four transpose cases, bias, beta = 1 accumulation, column slices
// (leading dimension > columns), mixed F32/BF16 operands as the LoRA branch uses them, F32 output from bf16
// inputs, odd sizes and the projection shapes of Qwen2.5-0.5B and 7B; a frozen Linear whose residual is the
// GEMM's beta source read in place (cuBLASLt C != D). Every case runs on fresh random inputs.
#include <array>

#include "tests/gpu/gpu_test_util.h"

namespace qsft::test {
namespace {

struct Case {
  int64_t M, N, K;
  bool ta, tb;
  DType a, b, c;
  bool bias;
  float beta;
};

std::string describe(const Case& k) {
  return "M=" + std::to_string(k.M) + " N=" + std::to_string(k.N) + " K=" + std::to_string(k.K) + (k.ta ? " A^T" : "") +
         (k.tb ? " B^T" : "") + " " + dtype_name(k.a) + "x" + dtype_name(k.b) + "->" + dtype_name(k.c) +
         (k.bias ? " +bias" : "") + (k.beta != 0 ? " beta=1" : "");
}

void run_case(Ops& cpu, Ops& gpu, const Case& k, std::mt19937& rng) {
  const int64_t a_rows = k.ta ? k.K : k.M, a_cols = k.ta ? k.M : k.K;
  const int64_t b_rows = k.tb ? k.N : k.K, b_cols = k.tb ? k.K : k.N;
  const int64_t pad = 8;  // C is a column slice of a wider matrix: ld = N + 2 pad, columns [pad, pad + N)
  Both A(cpu, gpu, k.a, {a_rows, a_cols}, random_uniform(size_t(a_rows * a_cols), rng));
  Both B(cpu, gpu, k.b, {b_rows, b_cols}, random_uniform(size_t(b_rows * b_cols), rng));
  Both C(cpu, gpu, k.c, {k.M, k.N + 2 * pad}, random_uniform(size_t(k.M * (k.N + 2 * pad)), rng));
  Both bias(cpu, gpu, k.c, {k.N}, random_uniform(size_t(k.N), rng));
  auto run = [&](Ops& ops, OpsTensor& a, OpsTensor& b, OpsTensor& c, OpsTensor& bi) {
    const Mat cm = Mat::of(c.t.cols(pad, pad + k.N));
    ops.gemm(Mat::of(a.t), k.ta, Mat::of(b.t), k.tb, cm, 0.75f, k.beta, k.bias ? &bi.t : nullptr);
  };
  run(cpu, A.c, B.c, C.c, bias.c);
  run(gpu, A.g, B.g, C.g, bias.g);
  // bf16 operands (an F32 LoRA matrix is rounded to bf16 on the GPU) and outputs: about 2^-9 per rounding.
  const bool any_bf16 = k.a == DType::BF16 || k.b == DType::BF16 || k.c == DType::BF16;
  C.expect_close(any_bf16 ? 1e-2 : 1e-5, "gemm " + describe(k));
  // The columns outside the slice are untouched.
  const std::vector<float> got = C.g.get(), before = C.c.get();
  const int64_t outside[] = {0, pad - 1, pad + k.N, k.N + 2 * pad - 1};
  const int64_t changed = first_failing(k.M * 4, [&](int64_t i) {
    const size_t e = size_t((i / 4) * (k.N + 2 * pad) + outside[i % 4]);
    return got[e] == before[e];
  });
  EXPECT_EQ(changed, -1) << "(row " << changed / 4 << ") written outside the slice: " << describe(k);
}

TEST(GpuGemm, TransposesBiasBetaAndSlicesMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(31);
  const DType F = DType::F32, H = DType::BF16;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (DType dt : {F, H})
        for (float beta : {0.0f, 1.0f})
          for (bool bias : {false, true}) run_case(*cpu, *gpu, {37, 53, 71, ta, tb, dt, dt, dt, bias, beta}, rng);
}

TEST(GpuGemm, LoraMixedDtypesMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(32);
  const DType F = DType::F32, H = DType::BF16;
  const int64_t T = 301, in = 896, out = 896, r = 16;
  run_case(*cpu, *gpu, {T, r, in, false, true, H, F, H, false, 0.0f}, rng);    // u = x A^T
  run_case(*cpu, *gpu, {T, out, r, false, true, H, F, H, false, 1.0f}, rng);   // y += s u B^T
  run_case(*cpu, *gpu, {out, r, T, true, false, H, H, F, false, 1.0f}, rng);   // dB += s dy^T u (F32 out)
  run_case(*cpu, *gpu, {T, r, out, false, false, H, F, H, false, 0.0f}, rng);  // du = s dy B
  run_case(*cpu, *gpu, {r, in, T, true, false, H, H, F, false, 1.0f}, rng);    // dA += du^T x (F32 out)
  run_case(*cpu, *gpu, {T, in, r, false, false, H, F, H, false, 1.0f}, rng);   // dx += du A
}

TEST(GpuGemm, QwenProjectionShapesMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(33);
  const DType H = DType::BF16;
  const int64_t T = 67;
  // 0.5B: qkv 896 -> 1152 with bias, o 896 -> 896, gate_up 896 -> 9728, down 4864 -> 896 (and their backwards)
  run_case(*cpu, *gpu, {T, 1152, 896, false, true, H, H, H, true, 0.0f}, rng);
  run_case(*cpu, *gpu, {T, 9728, 896, false, true, H, H, H, false, 0.0f}, rng);
  run_case(*cpu, *gpu, {T, 896, 4864, false, true, H, H, H, false, 1.0f}, rng);
  run_case(*cpu, *gpu, {T, 896, 9728, false, false, H, H, H, false, 0.0f}, rng);
  // 7B: q 3584 -> 3584 with bias, gate_up 3584 -> 37888, down 18944 -> 3584
  run_case(*cpu, *gpu, {T, 3584, 3584, false, true, H, H, H, true, 0.0f}, rng);
  run_case(*cpu, *gpu, {T, 37888, 3584, false, true, H, H, H, false, 0.0f}, rng);
  run_case(*cpu, *gpu, {T, 3584, 18944, false, true, H, H, H, false, 1.0f}, rng);
}

// y = x W^T + b + residual with the residual read in place (C != D): y starts poisoned, the residual is unchanged.
TEST(GpuLinear, ResidualReadInPlaceMatchesCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(34);
  const DType H = DType::BF16;
  for (const auto& [T, in, out] : {std::array<int64_t, 3>{67, 896, 896}, std::array<int64_t, 3>{129, 4864, 896}}) {
    Both x(*cpu, *gpu, H, {T, in}, random_uniform(size_t(T * in), rng));
    Both w(*cpu, *gpu, H, {out, in}, random_uniform(size_t(out * in), rng, -0.05f, 0.05f));
    Both b(*cpu, *gpu, H, {out}, random_uniform(size_t(out), rng));
    const std::vector<float> res_values = random_uniform(size_t(T * out), rng);
    Both res(*cpu, *gpu, H, {T, out}, res_values), y(*cpu, *gpu, H, {T, out});
    cpu->linear(x.c.t, LinearWeight{w.c.t, b.c.t}, y.c.t, &res.c.t);
    gpu->linear(x.g.t, LinearWeight{w.g.t, b.g.t}, y.g.t, &res.g.t);
    y.expect_close(1e-2, "linear + residual");
    EXPECT_EQ(read_gpu_result(res.g, "linear residual"), as_stored(res_values, H)) << "the residual was written";
  }
}

}  // namespace
}  // namespace qsft::test
