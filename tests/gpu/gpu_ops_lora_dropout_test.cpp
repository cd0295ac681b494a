// CUDA Ops::lora_a_dropout and lora_da_dropout (the fused kernels of kernels/lora_dropout.cu and lora_dropout_bwd.cu,
// and the composition they fall back to) and lora_dx_dropout (kernels/skinny_gemm.cu, or the composition) against
// the CPU ops and against the GPU's own dropout then GEMM, on fresh random inputs into poisoned outputs (dA and dx:
// accumulated onto random values): odd T, 1 to 3 members, K or the tokens split over blocks or not, u a column
// slice, the 7B LoRA shapes (T 4096; in 3584 with q/k/v and gate/up, in 18944 with down); the masks and 1/(1-p)
// scaling bit for bit through a selecting A (forward) and a selecting du (dA); and a LoRA group's forward and backward
// (engine/model/lora_linear.h) with the fused forward against the unfused one. Also the backward's B and u gradients
// (Ops::lora_db_du: kernels/lora_db_du.cu) against the CPU's and the GPU's two GEMMs.
#include <cstdint>
#include <cstdlib>

#include "engine/model/lora_linear.h"
#include "tests/gpu/gpu_test_util.h"

namespace qsft::test {
namespace {

struct Shape {
  int64_t T, in, r;
  int n;
  float p;
  DType dt;
};

std::string tag_of(const Shape& s) {
  return std::string(dtype_name(s.dt)) + " T=" + std::to_string(s.T) + " in=" + std::to_string(s.in) +
         " r=" + std::to_string(s.r) + " n=" + std::to_string(s.n) + " p=" + std::to_string(s.p).substr(0, 4);
}

const uint64_t kSeeds[3] = {0x243F6A8885A308D3ull, 0x13198A2E03707344ull, 77};

// u [T, n r] as columns [2, 2 + n r) of a poisoned [T, n r + 4] buffer on both backends; the GPU's also against
// its own dropout + GEMM per member (the path QSFT_LORA_FUSED_DROPOUT=0 keeps).
void check_shape(Ops& cpu, Ops& gpu, const Shape& s, std::mt19937& rng) {
  const std::string tag = tag_of(s);
  const int64_t N = s.n * s.r, W = N + 4;
  // x from the parallel fill: the 7B shapes' [4096, 18944] takes seconds from std::mt19937
  Both x(cpu, gpu, s.dt, {s.T, s.in}, hashed_uniform(size_t(s.T * s.in), rng())),
      A(cpu, gpu, s.dt, {N, s.in}, random_uniform(size_t(N * s.in), rng, -0.05f, 0.05f)), u(cpu, gpu, s.dt, {s.T, W}),
      scratch(cpu, gpu, s.dt, {s.T, s.in});
  const std::span<const uint64_t> seeds(kSeeds, size_t(s.n));
  Tensor uc = u.c.t.cols(2, 2 + N), ug = u.g.t.cols(2, 2 + N);
  cpu.lora_a_dropout(x.c.t, A.c.t, s.p, seeds, uc, scratch.c.t);
  gpu.lora_a_dropout(x.g.t, A.g.t, s.p, seeds, ug, scratch.g.t);
  const std::vector<float> got = read_gpu_result(u.g, "lora_a_dropout " + tag), want = u.c.get();
  const int64_t outside[] = {0, 1, N + 2, N + 3};
  const int64_t written =
      first_failing(s.T * 4, [&](int64_t i) { return std::isnan(got[size_t((i / 4) * W + outside[i % 4])]); });
  EXPECT_EQ(written, -1) << "lora_a_dropout wrote outside u: row " << written / 4 << " " << tag;
  std::vector<float> got_u, want_u;
  for (int64_t t = 0; t < s.T; ++t) {
    got_u.insert(got_u.end(), got.begin() + t * W + 2, got.begin() + t * W + 2 + N);
    want_u.insert(want_u.end(), want.begin() + t * W + 2, want.begin() + t * W + 2 + N);
  }
  expect_close(got_u, want_u, tolerance(s.dt), "lora_a_dropout vs CPU " + tag);
  // The GPU's dropout then GEMM: the same bf16 inputs to the products, summed in another order.
  OpsTensor xd(gpu, s.dt, {s.T, s.in}), ref(gpu, s.dt, {s.T, N});
  for (int j = 0; j < s.n; ++j) {
    gpu.dropout(x.g.t, s.p, kSeeds[j], xd.t);
    gpu.gemm(Mat::of(xd.t), false, Mat::of(A.g.t.rows(j * s.r, (j + 1) * s.r)), true,
             Mat::of(ref.t.cols(j * s.r, (j + 1) * s.r)), 1.0f, 0.0f);
  }
  expect_close(got_u, read_gpu_result(ref, "dropout + gemm " + tag), s.dt == DType::BF16 ? 5e-3 : 1e-5,
               "lora_a_dropout vs GPU dropout+gemm " + tag);
}

// The backward's dA += du^T dropout(x) per member (lora_da_dropout: kernels/lora_dropout_bwd.cu on the GPU where it
// takes the shapes, else Ops' composition) on both backends, dA starting from the same random values; the GPU's also
// against its own dropout + GEMM per member.
void check_grad_shape(Ops& cpu, Ops& gpu, const Shape& s, std::mt19937& rng) {
  const std::string tag = tag_of(s);
  const int64_t N = s.n * s.r;
  Both x(cpu, gpu, s.dt, {s.T, s.in}, hashed_uniform(size_t(s.T * s.in), rng())),
      du(cpu, gpu, s.dt, {s.T, N}, random_uniform(size_t(s.T * N), rng, -0.05f, 0.05f)),
      scratch(cpu, gpu, s.dt, {s.T, s.in});
  const std::vector<float> dA0 = random_uniform(size_t(N * s.in), rng);
  Both dA(cpu, gpu, DType::F32, {N, s.in}, dA0);
  const std::span<const uint64_t> seeds(kSeeds, size_t(s.n));
  cpu.lora_da_dropout(du.c.t, x.c.t, s.p, seeds, dA.c.t, scratch.c.t);
  gpu.lora_da_dropout(du.g.t, x.g.t, s.p, seeds, dA.g.t, scratch.g.t);
  const std::vector<float> got = read_gpu_result(dA.g, "lora_da_dropout " + tag);
  expect_close(got, dA.c.get(), tolerance(s.dt), "lora_da_dropout vs CPU " + tag);
  OpsTensor xd(gpu, s.dt, {s.T, s.in}), ref(gpu, DType::F32, {N, s.in});
  ref.set(dA0);
  for (int j = 0; j < s.n; ++j) {
    gpu.dropout(x.g.t, s.p, kSeeds[j], xd.t);
    gpu.gemm(Mat::of(du.g.t.cols(j * s.r, (j + 1) * s.r)), true, Mat::of(xd.t), false,
             Mat::of(ref.t.rows(j * s.r, (j + 1) * s.r)), 1.0f, 1.0f);
  }
  expect_close(got, read_gpu_result(ref, "dropout + gemm (dA) " + tag), 1e-4,
               "lora_da_dropout vs GPU dropout+gemm " + tag);
}

// The backward's dx += sum_j dropout_j(du_j A_j) (lora_dx_dropout: kernels/skinny_gemm.cu on the GPU where it takes
// the shapes) on both backends, dx starting from the same random values; the GPU's also against its composition
// with the kernel off (QSFT_SKINNY_GEMM=0: cuBLASLt into the scratch, then dropout_add per member; the product is
// rounded to bf16 there before the mask, hence 5e-3).
void check_dx_shape(Ops& cpu, Ops& gpu, const Shape& s, std::mt19937& rng, bool accumulate) {
  const std::string tag = tag_of(s) + (accumulate ? " dx +=" : " dx =");
  const int64_t N = s.n * s.r;
  const std::vector<float> dx0 = hashed_uniform(size_t(s.T * s.in), rng());
  Both du(cpu, gpu, s.dt, {s.T, N}, random_uniform(size_t(s.T * N), rng, -0.5f, 0.5f)),
      A(cpu, gpu, s.dt, {N, s.in}, random_uniform(size_t(N * s.in), rng, -0.5f, 0.5f)),
      dx(cpu, gpu, s.dt, {s.T, s.in}, dx0), scratch(cpu, gpu, s.dt, {s.T, s.in});
  const std::span<const uint64_t> seeds(kSeeds, size_t(s.n));
  cpu.lora_dx_dropout(du.c.t, A.c.t, s.p, seeds, dx.c.t, scratch.c.t, accumulate);
  gpu.lora_dx_dropout(du.g.t, A.g.t, s.p, seeds, dx.g.t, scratch.g.t, accumulate);
  const std::vector<float> got = read_gpu_result(dx.g, "lora_dx_dropout " + tag);
  expect_close(got, dx.c.get(), tolerance(s.dt), "lora_dx_dropout vs CPU " + tag);
  OpsTensor ref(gpu, s.dt, {s.T, s.in});
  ref.set(dx0);
  setenv("QSFT_SKINNY_GEMM", "0", 1);
  gpu.lora_dx_dropout(du.g.t, A.g.t, s.p, seeds, ref.t, scratch.g.t, accumulate);
  unsetenv("QSFT_SKINNY_GEMM");
  expect_close(got, read_gpu_result(ref, "lora_dx_dropout composed " + tag), s.dt == DType::BF16 ? 5e-3 : 1e-5,
               "lora_dx_dropout vs GPU gemm+dropout_add " + tag);
}

TEST(GpuLoraDropout, InputGradientMatchesCpuAndComposition) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(89);
  const DType B = DType::BF16;
  for (const Shape& s : {Shape{13, 40, 16, 3, 0.05f, B},            // ragged T and columns (one tile)
                         Shape{515, 896, 16, 1, 0.05f, B},          // one member, T past 8 tiles
                         Shape{300, 520, 32, 2, 0.3f, B},           // r32 x 2, in not a multiple of 64
                         Shape{77, 264, 64, 3, 0.5f, B},            // r64 x 3: three full segments
                         Shape{1, 8, 8, 1, 0.5f, B},                // one token, one column word
                         Shape{40, 33, 8, 2, 0.05f, B},             // in not a multiple of 8: the composition
                         Shape{40, 64, 4, 3, 0.05f, B},             // r not a multiple of 8: the composition
                         Shape{50, 64, 16, 2, 0.05f, DType::F32}})  // F32: the composition
    for (bool accumulate : {true, false})  // dx += ..., and dx = ... (written, not read: the LoRA-first order)
      check_dx_shape(*cpu, *gpu, s, rng, accumulate);
}

TEST(GpuLoraDropout, GradientMatchesCpuAndDropoutThenGemm) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(83);
  const DType B = DType::BF16;
  // The kernel splits the tokens over blocks when T >= 512 and the scratch holds 2 partials [n r, in] (H200: the
  // shapes marked), fp32 partials added in order; else it adds to dA.
  for (const Shape& s : {Shape{13, 40, 16, 3, 0.05f, B},            // ragged T and columns, one block
                         Shape{600, 512, 16, 3, 0.0f, B},           // p = 0; 2 splits
                         Shape{515, 896, 16, 1, 0.05f, B},          // one member, 0.5B's hidden size; 2 splits
                         Shape{300, 512, 32, 2, 0.05f, B},          // r32 x 2
                         Shape{1000, 136, 48, 2, 0.1f, B},          // r48 x 2 (n r 96), columns past a block; 3 splits
                         Shape{77, 264, 64, 3, 0.5f, B},            // n r = 192: k-steps of 32 tokens
                         Shape{130, 200, 64, 2, 0.05f, B},          // n r = 128: 8 row tiles, ragged T and columns
                         Shape{40, 64, 8, 2, 0.05f, B},             // r not a multiple of 16: the composition
                         Shape{40, 33, 16, 2, 0.05f, B},            // in not a multiple of 8: the composition
                         Shape{50, 64, 16, 2, 0.05f, DType::F32}})  // F32: the composition
    check_grad_shape(*cpu, *gpu, s, rng);
}

TEST(GpuLoraDropout, MatchesCpuAndDropoutThenGemm) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(71);
  const DType B = DType::BF16;
  // K is split over blocks when in >= 256 and the scratch holds the partial sums (in >= 2 n r splits).
  for (const Shape& s : {Shape{13, 40, 8, 3, 0.05f, B},            // one block, one split, ragged T
                         Shape{1, 8, 8, 1, 0.5f, B},               // one token, one k-step
                         Shape{130, 72, 16, 2, 0.05f, B},          // T past a block, K not a multiple of the k-step
                         Shape{77, 264, 64, 3, 0.5f, B},           // n r = 192: k-steps of 32, one split
                         Shape{600, 512, 16, 3, 0.0f, B},          // p = 0: plain x A^T; 4 splits
                         Shape{515, 896, 8, 2, 0.05f, B},          // 0.5B's hidden size; 7 splits
                         Shape{100, 512, 32, 3, 0.05f, B},         // r32 x 3 (the largest staging), split
                         Shape{100, 512, 64, 2, 0.05f, B},         // r64 x 2: k-steps of 32, split
                         Shape{40, 33, 8, 2, 0.05f, B},            // in not a multiple of 8: the fallback
                         Shape{40, 64, 4, 3, 0.05f, B},            // r not a multiple of 8: the fallback
                         Shape{50, 64, 8, 2, 0.05f, DType::F32}})  // F32: the fallback
    check_shape(*cpu, *gpu, s, rng);
}

// The 7B LoRA r16 all-linear shapes of a packed 4096-token micro-batch: q/k/v (in 3584), gate/up, down (in 18944).
// "Qwen" in the name: too long for tools/gpu-check.sh's sanitizer stages.
TEST(GpuLoraDropout, Qwen7BShapesMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(73);
  for (const Shape& s : {Shape{4096, 3584, 16, 3, 0.05f, DType::BF16}, Shape{4096, 3584, 16, 2, 0.05f, DType::BF16},
                         Shape{4096, 18944, 16, 1, 0.05f, DType::BF16}}) {
    check_shape(*cpu, *gpu, s, rng);
    check_grad_shape(*cpu, *gpu, s, rng);
    for (bool accumulate : {false, true})  // dx written (the model's order), and added to (QSFT_LORA_FIRST=0)
      check_dx_shape(*cpu, *gpu, s, rng, accumulate);
  }
}

// A_j selects columns: row k of A_j is 1 at column s k + j (s = in / r), so u_j[t, k] = dropout_j(x)[t, s k + j]
// exactly (one product by 1, the rest by 0): the kernel's masks and scaling against the GPU dropout op, bit for bit,
// with K split over 6 blocks (T 1000, r 16, in 768) and not (T 8, r 64, in 256).
TEST(GpuLoraDropout, MasksAndScalingAreTheDropoutOpsBitForBit) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(79);
  const int n = 3;
  struct Case {
    int64_t T, r, in;
  };
  for (const Case c : {Case{1000, 16, 768}, Case{8, 64, 256}}) {
    const int64_t T = c.T, r = c.r, in = c.in, s = in / r;
    OpsTensor x(*gpu, DType::BF16, {T, in}), A(*gpu, DType::BF16, {n * r, in}), u(*gpu, DType::BF16, {T, n * r}),
        scratch(*gpu, DType::BF16, {T, in}), xd(*gpu, DType::BF16, {T, in});
    x.set(random_uniform(size_t(T * in), rng, -4.0f, 4.0f));
    std::vector<float> a(size_t(n * r * in), 0.0f);
    for (int j = 0; j < n; ++j)
      for (int64_t k = 0; k < r; ++k) a[size_t((j * r + k) * in + s * k + j)] = 1.0f;
    A.set(a);
    gpu->lora_a_dropout(x.t, A.t, 0.3f, {kSeeds, size_t(n)}, u.t, scratch.t);
    const std::vector<float> got = read_gpu_result(u, "lora_a_dropout (selecting A)");
    for (int j = 0; j < n; ++j) {
      gpu->dropout(x.t, 0.3f, kSeeds[j], xd.t);
      const std::vector<float> want = xd.get();
      int64_t dropped = 0;
      for (int64_t t = 0; t < T; ++t)
        for (int64_t k = 0; k < r; ++k) dropped += want[size_t(t * in + s * k + j)] == 0.0f;
      const int64_t bad = first_failing(T * r, [&](int64_t i) {  // i = t r + k
        const int64_t t = i / r, k = i % r;
        return got[size_t(t * n * r + j * r + k)] == want[size_t(t * in + s * k + j)];
      });
      EXPECT_EQ(bad, -1) << "T " << T << " member " << j << " row " << bad / r << " k " << bad % r;
      if (T == 1000) {
        EXPECT_NEAR(double(dropped) / double(T * r), 0.3, 0.02) << "member " << j;
      }
    }
  }
}

// du_j selects tokens: column k of du_j is 1 at token t_k = k T / r + j, so dA_j[k, c] = dropout_j(x)[t_k, c] exactly
// (dA from 0, one product by 1, the rest by 0): the dA kernel's masks and scaling against the GPU dropout op, bit
// for bit, with the tokens split over 7 blocks (T 2000, r 16, in 648: a partial k-step and column block) and not
// (T 192, r 64: k-steps of 32).
TEST(GpuLoraDropout, GradientMasksAndScalingAreTheDropoutOpsBitForBit) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(97);
  const int n = 3;
  struct Case {
    int64_t T, r, in;
  };
  for (const Case c : {Case{2000, 16, 648}, Case{192, 64, 256}}) {
    const int64_t T = c.T, r = c.r, in = c.in, N = n * r;
    auto token = [&](int j, int64_t k) { return k * (T / r) + j; };
    OpsTensor x(*gpu, DType::BF16, {T, in}), du(*gpu, DType::BF16, {T, N}), dA(*gpu, DType::F32, {N, in}),
        scratch(*gpu, DType::BF16, {T, in}), xd(*gpu, DType::BF16, {T, in});
    x.set(random_uniform(size_t(T * in), rng, -4.0f, 4.0f));
    std::vector<float> d(size_t(T * N), 0.0f);
    for (int j = 0; j < n; ++j)
      for (int64_t k = 0; k < r; ++k) d[size_t(token(j, k) * N + j * r + k)] = 1.0f;
    du.set(d);
    dA.set(std::vector<float>(size_t(N * in), 0.0f));
    gpu->lora_da_dropout(du.t, x.t, 0.3f, {kSeeds, size_t(n)}, dA.t, scratch.t);
    const std::vector<float> got = read_gpu_result(dA, "lora_da_dropout (selecting du)");
    for (int j = 0; j < n; ++j) {
      gpu->dropout(x.t, 0.3f, kSeeds[j], xd.t);
      const std::vector<float> want = xd.get();
      const int64_t bad = first_failing(r * in, [&](int64_t i) {  // i = k in + c
        const int64_t k = i / in, col = i % in;
        return got[size_t((j * r + k) * in + col)] == want[size_t(token(j, k) * in + col)];
      });
      EXPECT_EQ(bad, -1) << "T " << T << " member " << j << " row " << bad / in << " column " << bad % in;
    }
  }
}

// One LoRA group of 3 members (q/k/v: outputs as column slices of one [T, 384]) on one backend: x, A, B, y, dy, dx
// in the compute dtype dt holding values rounded to bf16 (what the GPU stores), the gradients dA, dB F32; every
// value drawn from one seed, so both backends start from the same numbers.
struct GpuStack {
  GpuStack(Ops& ops, DType dt, int64_t T, int64_t in, int64_t r, float p, uint32_t seed)
      : x(ops, dt, {T, in}),
        A(ops, dt, {3 * r, in}),
        dA(ops, DType::F32, {3 * r, in}),
        y(ops, dt, {T, 384}),
        dy(ops, dt, {T, 384}),
        dx(ops, dt, {T, in}),
        u(ops, dt, {T, 3 * r}),
        du(ops, dt, {T, 3 * r}),
        xd(ops, dt, {T, in}) {
    std::mt19937 rng(seed);
    const DType B16 = DType::BF16;
    x.set(as_stored(random_uniform(size_t(x.t.numel()), rng), B16));
    A.set(as_stored(random_uniform(size_t(A.t.numel()), rng, -0.1f, 0.1f), B16));
    dA.set(random_uniform(size_t(dA.t.numel()), rng));
    for (OpsTensor* t : {&y, &dy, &dx}) t->set(as_stored(random_uniform(size_t(t->t.numel()), rng), B16));
    const int64_t outs[3] = {256, 64, 64};
    int64_t col = 0;
    for (int j = 0; j < 3; ++j) {
      B.push_back(std::make_unique<OpsTensor>(ops, dt, std::initializer_list<int64_t>{outs[j], r}));
      dB.push_back(std::make_unique<OpsTensor>(ops, DType::F32, std::initializer_list<int64_t>{outs[j], r}));
      B.back()->set(as_stored(random_uniform(size_t(outs[j] * r), rng, -0.1f, 0.1f), B16));
      dB.back()->set(random_uniform(size_t(outs[j] * r), rng));
      LoraBranch& b = s.m[size_t(j)];
      b.A = A.t.rows(j * r, (j + 1) * r);
      b.dA = dA.t.rows(j * r, (j + 1) * r);
      b.B = B.back()->t;
      b.dB = dB.back()->t;
      b.scaling = 2.0f;
      b.dropout = p;
      b.seed = kSeeds[j];
      ys.push_back(y.t.cols(col, col + outs[j]));
      dys.push_back(dy.t.cols(col, col + outs[j]));
      col += outs[j];
    }
    s.n = 3;
    s.A = A.t;
    s.dA = dA.t;
  }
  void step(Ops& ops) {
    lora_stack_forward(ops, s, x.t, u.t, ys.data(), xd.t);
    lora_stack_backward(ops, s, x.t, u.t, dys.data(), dx.t, du.t, xd.t);
  }
  OpsTensor x, A, dA, y, dy, dx, u, du, xd;
  std::vector<std::unique_ptr<OpsTensor>> B, dB;
  LoraStack s;
  std::vector<Tensor> ys, dys;
};

// The LoRA group's forward (A projections fused with dropout) and backward on the GPU against the CPU, and against
// the GPU's unfused path (QSFT_LORA_FUSED_DROPOUT=0): u, y, dA, dB, dx.
TEST(GpuLoraDropout, StackStepMatchesCpuAndUnfused) {
  QSFT_REQUIRE_GPU();
  const int64_t T = 300, in = 256, r = 16;
  GpuStack c(*cpu, DType::F32, T, in, r, 0.1f, 5), fused(*gpu, DType::BF16, T, in, r, 0.1f, 5),
      unfused(*gpu, DType::BF16, T, in, r, 0.1f, 5);
  setenv("QSFT_LORA_FUSED_DROPOUT", "0", 1);
  unfused.step(*gpu);
  unsetenv("QSFT_LORA_FUSED_DROPOUT");
  fused.step(*gpu);
  c.step(*cpu);
  auto both = [&](const OpsTensor& f, const OpsTensor& uf, const OpsTensor& ref, const std::string& what) {
    const std::vector<float> got = read_gpu_result(f, what);
    expect_close(got, read_gpu_result(uf, what), 5e-3, what + " fused vs unfused (GPU)");
    expect_close(got, ref.get(), tolerance(DType::BF16), what + " fused GPU vs CPU");
  };
  both(fused.u, unfused.u, c.u, "lora stack u");
  both(fused.y, unfused.y, c.y, "lora stack y");
  both(fused.dA, unfused.dA, c.dA, "lora stack dA");
  both(fused.dx, unfused.dx, c.dx, "lora stack dx");
  for (size_t j = 0; j < 3; ++j) both(*fused.dB[j], *unfused.dB[j], *c.dB[j], "lora stack dB_" + std::to_string(j));
}

// LoRA's B and u gradients of one member (Ops::lora_db_du: kernels/lora_db_du.cu where it takes the shapes) against
// the CPU's two GEMMs: dy, u and du column slices, dB accumulated onto random values, du's other columns poisoned
// and left so; and against the GPU's own two GEMMs (a one-element scratch: no room for the partial sums, so the
// fallback when T > 384; the kernel without partials for du otherwise).
void check_db_du(Ops& cpu, Ops& gpu, int64_t T, int64_t out, int64_t r, std::mt19937& rng) {
  const std::string tag =
      "lora_db_du T=" + std::to_string(T) + " out=" + std::to_string(out) + " r=" + std::to_string(r);
  const DType bf = DType::BF16;
  Both dy(cpu, gpu, bf, {T, out + 8}, hashed_uniform(size_t(T * (out + 8)), rng())),
      u(cpu, gpu, bf, {T, 2 * r}, random_uniform(size_t(T * 2 * r), rng)),
      B(cpu, gpu, bf, {out, r}, random_uniform(size_t(out * r), rng, -0.1f, 0.1f)), du(cpu, gpu, bf, {T, r + 8}),
      scratch(cpu, gpu, bf, {T, out});
  const std::vector<float> dB0 = random_uniform(size_t(out * r), rng);
  Both dB(cpu, gpu, DType::F32, {out, r}, dB0);
  OpsTensor tiny(gpu, bf, {1}), dB_ref(gpu, DType::F32, {out, r}), du_ref(gpu, bf, {T, r + 8});
  dB_ref.set(dB0);
  auto run = [&](Ops& ops, OpsTensor& y, OpsTensor& uu, OpsTensor& b, OpsTensor& db, OpsTensor& d, OpsTensor& sc) {
    Tensor du_cols = d.t.cols(8, 8 + r);
    ops.lora_db_du(y.t.cols(8, 8 + out), uu.t.cols(r, 2 * r), b.t, 0.5f, db.t, du_cols, sc.t);
  };
  run(cpu, dy.c, u.c, B.c, dB.c, du.c, scratch.c);
  run(gpu, dy.g, u.g, B.g, dB.g, du.g, scratch.g);
  run(gpu, dy.g, u.g, B.g, dB_ref, du_ref, tiny);
  const std::vector<float> got_db = read_gpu_result(dB.g, tag + " dB"), got_du = read_gpu_result(du.g, tag + " du");
  const std::vector<float> want_du = du.c.get(), ref_du = read_gpu_result(du_ref, tag + " du (small scratch)");
  expect_max_close(got_db, dB.c.get(), 1e-4, tag + " dB vs CPU");
  expect_max_close(got_db, read_gpu_result(dB_ref, tag + " dB (small scratch)"), 1e-4, tag + " dB vs small scratch");
  std::vector<float> g, w, f;  // du's columns
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < r; ++k) {
      const size_t i = size_t(t * (r + 8) + 8 + k);
      g.push_back(got_du[i]), w.push_back(want_du[i]), f.push_back(ref_du[i]);
    }
  expect_max_close(g, w, tolerance(bf), tag + " du vs CPU");
  expect_max_close(g, f, tolerance(bf), tag + " du vs small scratch");
  const int64_t bad =
      first_failing(T * 8, [&](int64_t i) { return std::isnan(got_du[size_t((i / 8) * (r + 8) + i % 8)]); });
  EXPECT_EQ(bad, -1) << tag << ": du written outside its columns, row " << bad / 8;
}

// The kernel's cases on an H200 (132 SMs): one block (direct writes); token and output ranges both split (partial
// sums for dB and du, out not a multiple of 64); outputs split only; 0.5B's and 7B's widths; r 8 (the GEMMs).
TEST(GpuLoraDbDu, MatchesCpuAndTheGemms) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(101);
  struct Case {
    int64_t T, out, r;
  };
  for (const Case c :
       {Case{13, 40, 16}, Case{1000, 520, 16}, Case{384, 4864, 16}, Case{700, 3584, 16}, Case{50, 64, 8}})
    check_db_du(*cpu, *gpu, c.T, c.out, c.r, rng);
}

// The 7B LoRA r16 outputs at a packed 4096-token micro-batch: q and o (3584), k and v (512), gate and up (18944).
TEST(GpuLoraDbDu, Qwen7BShapesMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(103);
  for (int64_t out : {3584, 512, 18944}) check_db_du(*cpu, *gpu, 4096, out, 16, rng);
}

}  // namespace
}  // namespace qsft::test
