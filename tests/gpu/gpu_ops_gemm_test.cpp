// The cuBLASLt GEMM against the CPU GEMM: all four transpose cases, bias, beta = 1 accumulation, column slices
// (leading dimension > columns), mixed F32/BF16 operands as the LoRA branch uses them, F32 output from bf16
// inputs, odd sizes and the projection shapes of Qwen2.5-0.5B and 7B; the one-pass kernel of small-K accumulations; a
// frozen Linear whose residual is the GEMM's beta source read in place (cuBLASLt C != D). Every case runs on fresh
// random inputs.
#include <array>

#include "tests/gpu/gpu_test_util.h"
#if defined(QSFT_HAVE_CUDA)
#include "kernels/skinny_gemm_cuda.h"
#endif

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
         (k.bias ? " +bias" : "") + (k.beta != 0 ? " beta=1" : " beta=0");
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

// C += alpha A op(B) with a small K in bf16 (kernels/skinny_gemm.cu: the LoRA up-projections y += s u B^T and
// dx += du A), C a column slice: tiles past M and N, K segments (K > 64: 64 + 8; 256: four), and the 7B gate/up and
// down widths; each also with the kernel off (QSFT_SKINNY_GEMM=0: cuBLASLt), so both paths meet the CPU.
TEST(GpuGemm, SkinnyKAccumulateMatchesCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(35);
  const DType H = DType::BF16;
  const std::array<int64_t, 4> cases[] = {
      {1, 8, 8, 1},      {64, 64, 64, 1},   {65, 72, 72, 0},     {130, 200, 256, 1},  {301, 896, 16, 1},
      {301, 896, 48, 0}, {77, 264, 192, 0}, {1000, 3584, 16, 1}, {257, 18944, 16, 1}, {257, 3584, 16, 0}};
  const size_t n = small_shapes_only() ? 7 : std::size(cases);  // under compute-sanitizer: the kernel's small cases
  for (const char* skinny : {"1", "0"}) {
    setenv("QSFT_SKINNY_GEMM", skinny, 1);
    for (size_t i = 0; i < n; ++i) {
      const auto& [M, N, K, tb] = cases[i];
      for (float beta : {1.0f, 0.0f})  // C += ..., and C = ... (written without being read: the LoRA-first order)
        run_case(*cpu, *gpu, {M, N, K, false, tb != 0, H, H, H, false, beta}, rng);
    }
  }
  unsetenv("QSFT_SKINNY_GEMM");
  // small K that cuBLASLt keeps: A transposed, a bias
  run_case(*cpu, *gpu, {65, 72, 16, true, true, H, H, H, false, 1.0f}, rng);
  run_case(*cpu, *gpu, {65, 72, 16, false, true, H, H, H, true, 1.0f}, rng);
}

#if defined(QSFT_HAVE_CUDA)
// Which GEMMs CudaOps::gemm gives the one-pass kernel (host logic, on made-up 16-byte-aligned addresses): the LoRA
// up-projection and dx (+)= du A (C read in place: no c_src, or c_src == C; or not read: beta 0), and none that
// differs in any condition.
TEST(GpuGemm, SkinnyKRoutesOnlyWhatItComputes) {
  using cuda::GemmOperand;
  char* base = reinterpret_cast<char*>(uintptr_t(1) << 20);
  const DType H = DType::BF16;
  const GemmOperand u{base, H, 300, 16, 48}, B{base + 4096, H, 896, 16, 16}, y{base + (1 << 16), H, 300, 896, 4608},
      A{base + 8192, H, 16, 896, 896};
  const float bias = 0.0f;
  auto fits = [&](const GemmOperand& U, bool tu, const GemmOperand& W, bool tw, const GemmOperand& C, float beta,
                  const void* b = nullptr,
                  const void* src = nullptr) { return cuda::skinny_add_fits(U, tu, W, tw, C, beta, b, src); };
  EXPECT_TRUE(fits(u, false, B, true, y, 1.0f)) << kHostCheck << "y += s u B^T";
  EXPECT_TRUE(fits(u, false, B, true, y, 1.0f, nullptr, y.data)) << kHostCheck << "c_src == C";
  EXPECT_TRUE(fits(u, false, A, false, y, 1.0f)) << kHostCheck << "dx += du A";
  EXPECT_TRUE(fits(u, false, B, true, y, 0.0f)) << kHostCheck << "y = s u B^T (beta 0)";
  EXPECT_TRUE(fits(u, false, B, true, y, 0.0f, nullptr, base)) << kHostCheck << "beta 0: no C is read";
  EXPECT_FALSE(fits(u, false, B, true, y, 0.5f)) << kHostCheck << "beta 0.5";
  EXPECT_FALSE(fits(u, false, B, true, y, 1.0f, &bias)) << kHostCheck << "bias";
  EXPECT_FALSE(fits(u, false, B, true, y, 1.0f, nullptr, base)) << kHostCheck << "c_src != C";
  EXPECT_FALSE(fits({base, H, 16, 300, 300}, true, B, true, y, 1.0f)) << kHostCheck << "U transposed";
  EXPECT_FALSE(fits({base, DType::F32, 300, 16, 48}, false, B, true, y, 1.0f)) << kHostCheck << "F32 U";
  EXPECT_FALSE(fits({base, H, 300, 12, 48}, false, {base + 4096, H, 896, 12, 16}, true, y, 1.0f))
      << kHostCheck << "K 12";
  EXPECT_FALSE(fits({base, H, 300, 264, 264}, false, {base + 4096, H, 896, 264, 264}, true, y, 1.0f))
      << kHostCheck << "K 264";
  EXPECT_FALSE(fits(u, false, B, true, {base + (1 << 16) + 2, H, 300, 896, 4608}, 1.0f)) << kHostCheck << "C unaligned";
  EXPECT_FALSE(fits(u, false, B, true, {base + (1 << 16), H, 300, 896, 4604}, 1.0f)) << kHostCheck << "ld 4604";
  EXPECT_FALSE(fits(u, false, {base + 4096, H, 900, 16, 16}, true, {base + (1 << 16), H, 300, 900, 4608}, 1.0f))
      << kHostCheck << "N 900";
  EXPECT_FALSE(fits(u, false, B, false, y, 1.0f)) << kHostCheck << "W's shape not op(W)'s";
}
#endif

// y = x W^T + b + residual with the residual read in place (C != D): y starts poisoned, the residual is unchanged.
TEST(GpuLinear, ResidualReadInPlaceMatchesCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(34);
  const DType H = DType::BF16;
  // {33, 64, 64}: K small enough for the one-pass kernel, which must leave it to cuBLASLt (C read from the residual)
  for (const auto& [T, in, out] : {std::array<int64_t, 3>{67, 896, 896}, std::array<int64_t, 3>{129, 4864, 896},
                                   std::array<int64_t, 3>{33, 64, 64}}) {
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
