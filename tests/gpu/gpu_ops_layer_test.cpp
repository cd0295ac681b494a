// CUDA RMSNorm (plain, residual-fused, backward also in place; rows at 8-byte offsets; Qwen3's strided head views),
// RoPE and SwiGLU (its backward also in place) against the CPU reference ops on fresh random inputs, at odd token
// counts and the real Qwen2.5-0.5B (H 896, I 4864, 14/2 heads of 64) and 7B (H 3584, I 18944, 28/4 heads of 128)
// widths, in F32 and BF16.
#include <memory>
#include <tuple>

#include "kernels/rope.h"
#include "tests/gpu/gpu_test_util.h"

namespace qsft::test {
namespace {

const DType kFloatTypes[] = {DType::F32, DType::BF16};

TEST(GpuRmsNorm, ForwardFusedAndBackwardMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(21);
  const float eps = 1e-6f;
  for (DType dt : kFloatTypes)
    // Words (16 bytes: 8 bf16, 4 f32) a lane of the warp-per-row kernels holds (forward up to 16, backward up to
    // 8, else one block per row), bf16 / f32: H = 64 and 256: 1 / 1-2; 320: 2 / 4 (last slot partial); 896: 4 / 8;
    // 2048: 8 / 16 (f32 backward: block); 3584: 16 / block (bf16 backward: block); 5120: block. Rows that are not
    // whole words (the element-at-a-time kernels): H = 37 in both, 100 and 1100 in bf16 (1100: more steps a
    // thread than the block forward keeps in registers).
    for (auto [T, H] : {std::pair<int64_t, int64_t>{1, 64}, {37, 896}, {129, 3584}, {5, 100}, {3, 37}, {2, 1100},
                        {17, 256}, {9, 2048}, {3, 5120}, {11, 320}}) {
      const std::string tag = std::string(dtype_name(dt)) + " T=" + std::to_string(T) + " H=" + std::to_string(H);
      const size_t TH = size_t(T * H);
      Both x(*cpu, *gpu, dt, {T, H}, random_uniform(TH, rng, -2.0f, 2.0f));
      Both w(*cpu, *gpu, dt, {H}, random_uniform(size_t(H), rng, 0.5f, 1.5f));
      Both y(*cpu, *gpu, dt, {T, H}), rstd(*cpu, *gpu, DType::F32, {T});
      cpu->rmsnorm_fwd(x.c.t, w.c.t, eps, y.c.t, rstd.c.t);
      gpu->rmsnorm_fwd(x.g.t, w.g.t, eps, y.g.t, rstd.g.t);
      y.expect_close(tolerance(dt), "rmsnorm y " + tag);
      // max|err| / max|ref| besides the relative L2 error: one wrong word among thousands shows there (f32: the
      // reductions' order differs, 1e-4)
      const double max_tol = dt == DType::BF16 ? tolerance(dt) : 1e-4;
      y.expect_max_close(max_tol, "rmsnorm y " + tag);
      rstd.expect_close(1e-5, "rmsnorm rstd " + tag);

      Both dy(*cpu, *gpu, dt, {T, H}, random_uniform(TH, rng)), dx(*cpu, *gpu, dt, {T, H}, random_uniform(TH, rng));
      cpu->rmsnorm_bwd(dy.c.t, x.c.t, w.c.t, rstd.c.t, dx.c.t);
      gpu->rmsnorm_bwd(dy.g.t, x.g.t, w.g.t, rstd.g.t, dx.g.t);
      dx.expect_close(tolerance(dt), "rmsnorm_bwd dx (accumulated) " + tag);
      dx.expect_max_close(max_tol, "rmsnorm_bwd dx (accumulated) " + tag);
      // Not accumulated, in place (dx = dy overwritten), in every word count of the warp kernels.
      cpu->rmsnorm_bwd(dy.c.t, x.c.t, w.c.t, rstd.c.t, dy.c.t, false);
      gpu->rmsnorm_bwd(dy.g.t, x.g.t, w.g.t, rstd.g.t, dy.g.t, false);
      dy.expect_max_close(max_tol, "rmsnorm_bwd dx = dy (in place) " + tag);
    }
}

// A bf16 column slice whose row stride is not a whole number of 16-byte words (ld % 8 != 0) while its width is:
// the rows are not 16-byte aligned, so the element-at-a-time kernels must take it, forward and backward.
TEST(GpuRmsNorm, UnalignedRowsOfWholeWordWidthMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(22);
  const int64_t T = 13, H = 896, ld = H + 4;  // 4 bf16 = 8 bytes: every other row starts mid-word
  const DType dt = DType::BF16;
  Both xf(*cpu, *gpu, dt, {T, ld}, random_uniform(size_t(T * ld), rng, -2.0f, 2.0f));
  Both w(*cpu, *gpu, dt, {H}, random_uniform(size_t(H), rng, 0.5f, 1.5f));
  Both y(*cpu, *gpu, dt, {T, H}), rstd(*cpu, *gpu, DType::F32, {T});
  const Tensor xc = xf.c.t.cols(0, H), xg = xf.g.t.cols(0, H);
  cpu->rmsnorm_fwd(xc, w.c.t, 1e-6f, y.c.t, rstd.c.t);
  gpu->rmsnorm_fwd(xg, w.g.t, 1e-6f, y.g.t, rstd.g.t);
  y.expect_max_close(tolerance(dt), "rmsnorm y (rows at an 8-byte offset)");
  Both dyf(*cpu, *gpu, dt, {T, ld}, random_uniform(size_t(T * ld), rng));
  Both dx(*cpu, *gpu, dt, {T, H}, random_uniform(size_t(T * H), rng));
  cpu->rmsnorm_bwd(dyf.c.t.cols(0, H), xc, w.c.t, rstd.c.t, dx.c.t);
  gpu->rmsnorm_bwd(dyf.g.t.cols(0, H), xg, w.g.t, rstd.g.t, dx.g.t);
  dx.expect_max_close(tolerance(dt), "rmsnorm_bwd dx (dy, x rows at an 8-byte offset)");
}

// Qwen3's head norms on the strided q and k head views of a fused [T, (n + 2 nkv) D] buffer: forward, backward
// (accumulating, and in place: dx = dy overwritten) and the weight gradient against the CPU op on the same views (the
// columns outside a view must stay as they were: the whole fused buffers are compared), and on the GPU bit for bit
// equal to the packed op on packed copies of the views. D = 128: 16-byte vectors; D = 12: scalar in bf16, vectors in
// f32 (4 floats) with a token row stride of 60 floats.
TEST(GpuRmsNorm, StridedHeadViewsMatchCpuAndPackedGpuExactly) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(25);
  const float eps = 1e-6f;
  for (DType dt : kFloatTypes)
    for (const auto& shape : {std::tuple<int64_t, int64_t, int64_t, int64_t>{37, 32, 8, 128}, {5, 3, 1, 12}}) {
      // plain variables, not structured bindings: the lambdas below capture them (clang before C++20 refuses those)
      const int64_t T = std::get<0>(shape), n = std::get<1>(shape), nkv = std::get<2>(shape), D = std::get<3>(shape);
      const int64_t W = (n + 2 * nkv) * D;
      for (const auto& part : {std::pair<int64_t, int64_t>{0, n}, {n * D, nkv}}) {  // q's heads, k's heads
        const int64_t c0 = part.first, heads = part.second;
        const int64_t R = T * heads;
        const std::string tag = std::string(dtype_name(dt)) + " T=" + std::to_string(T) + " heads=" +
                                std::to_string(heads) + " of " + std::to_string(W / D) + " D=" + std::to_string(D);
        auto fused = [&] { return Both(*cpu, *gpu, dt, {T, W}, random_uniform(size_t(T * W), rng)); };
        auto view = [&](OpsTensor& f) { return f.t.cols(c0, c0 + heads * D).view({T, heads, D}); };
        // The GPU view's values, packed by the GPU's copy: the strided result to compare with the packed op's.
        auto packed = [&](OpsTensor& f) {
          auto p = std::make_unique<OpsTensor>(*gpu, dt, std::initializer_list<int64_t>{T, heads, D});
          gpu->copy(p->t, view(f));
          return p;
        };
        auto expect_same = [&](const OpsTensor& a, const OpsTensor& b, const std::string& what) {
          EXPECT_TRUE(read_gpu_result(a, what) == read_gpu_result(b, what)) << what << " strided != packed " << tag;
        };
        Both x = fused(), y = fused(), w(*cpu, *gpu, dt, {D}, random_uniform(size_t(D), rng, 0.5f, 1.5f));
        Both rstd(*cpu, *gpu, DType::F32, {R});
        Tensor xc = view(x.c), xg = view(x.g), yc = view(y.c), yg = view(y.g);
        cpu->rmsnorm_fwd(xc, w.c.t, eps, yc, rstd.c.t);
        gpu->rmsnorm_fwd(xg, w.g.t, eps, yg, rstd.g.t);
        y.expect_close(tolerance(dt), "rmsnorm y (strided) " + tag);
        rstd.expect_close(1e-5, "rmsnorm rstd (strided) " + tag);
        auto xp = packed(x.g), yp = packed(y.g);
        OpsTensor yp2(*gpu, dt, {R, D}), rstd2(*gpu, DType::F32, {R});
        gpu->rmsnorm_fwd(xp->t, w.g.t, eps, yp2.t, rstd2.t);
        expect_same(*yp, yp2, "rmsnorm y");
        expect_same(rstd.g, rstd2, "rmsnorm rstd");

        Both dy = fused(), dx = fused();
        Tensor dyc = view(dy.c), dyg = view(dy.g), dxc = view(dx.c), dxg = view(dx.g);
        auto dyp = packed(dy.g), dxp = packed(dx.g);  // before the strided ops: the prior of the accumulation
        cpu->rmsnorm_bwd(dyc, xc, w.c.t, rstd.c.t, dxc);
        gpu->rmsnorm_bwd(dyg, xg, w.g.t, rstd.g.t, dxg);
        dx.expect_close(tolerance(dt), "rmsnorm_bwd dx (strided, accumulated) " + tag);
        gpu->rmsnorm_bwd(dyp->t, xp->t, w.g.t, rstd.g.t, dxp->t);
        expect_same(*packed(dx.g), *dxp, "rmsnorm_bwd dx (accumulated)");

        Both dw(*cpu, *gpu, DType::F32, {D}, random_uniform(size_t(D), rng));
        OpsTensor dw2(*gpu, DType::F32, {D});
        gpu->copy(dw2.t, dw.g.t);
        cpu->rmsnorm_wgrad(dyc, xc, rstd.c.t, dw.c.t);
        gpu->rmsnorm_wgrad(dyg, xg, rstd.g.t, dw.g.t);
        dw.expect_close(1e-5, "rmsnorm_wgrad dw (strided) " + tag);
        gpu->rmsnorm_wgrad(dyp->t, xp->t, rstd.g.t, dw2.t);
        expect_same(dw.g, dw2, "rmsnorm_wgrad dw");

        OpsTensor dxo(*gpu, dt, {R, D});  // in place: dy's view becomes J^T dy
        gpu->rmsnorm_bwd(dyp->t, xp->t, w.g.t, rstd.g.t, dxo.t, false);
        cpu->rmsnorm_bwd(dyc, xc, w.c.t, rstd.c.t, dyc, false);
        gpu->rmsnorm_bwd(dyg, xg, w.g.t, rstd.g.t, dyg, false);
        dy.expect_close(tolerance(dt), "rmsnorm_bwd dx = dy (strided, in place) " + tag);
        expect_same(*packed(dy.g), dxo, "rmsnorm_bwd dx = dy (in place)");
      }
    }
}

TEST(GpuRope, ForwardAndBackwardMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(22);
  const std::vector<std::vector<int>> packings = {{1}, {7, 13, 20}, {1000, 3, 997}};
  for (DType dt : kFloatTypes)
    for (const auto& lengths : packings)
      // D/2 = 6: no vectors; n = 27: at T = 2000 the kernel's head groups (2 or 4 heads) leave a partial last group
      for (auto [n, D] : {std::pair<int64_t, int64_t>{4, 16}, {14, 64}, {28, 128}, {3, 12}, {27, 128}}) {
        OpsLayout lc(*cpu, lengths), lg(*gpu, lengths);
        const int64_t T = lc.total;
        const std::string tag = std::string(dtype_name(dt)) + " T=" + std::to_string(T) + " n=" + std::to_string(n) +
                                " D=" + std::to_string(D);
        Both inv_freq(*cpu, *gpu, DType::F32, {D / 2}, cpu::rope_default_inv_freq(D, 1e6));
        const float scale = D == 64 ? 1.25f : 1.0f;  // attention_scaling (YaRN) on one head size
        const RopeFreqs fc{inv_freq.c.t, scale}, fg{inv_freq.g.t, scale};
        Both x(*cpu, *gpu, dt, {T, n, D}, random_uniform(size_t(T * n * D), rng));
        cpu->rope_fwd(x.c.t, lc.seq, fc);
        gpu->rope_fwd(x.g.t, lg.seq, fg);
        x.expect_close(tolerance(dt), "rope_fwd " + tag);
        Both dx(*cpu, *gpu, dt, {T, n, D}, random_uniform(size_t(T * n * D), rng));
        cpu->rope_bwd(dx.c.t, lc.seq, fc);
        gpu->rope_bwd(dx.g.t, lg.seq, fg);
        dx.expect_close(tolerance(dt), "rope_bwd " + tag);
      }
}

// RoPE of q's and k's heads in one call over the strided [T, n + nkv, D] view of a fused [T, (n + 2 nkv) D] QKV
// buffer: the bits of the packed op on the same heads (copied out with Ops::copy), v's columns untouched.
TEST(GpuRope, StridedHeadViewMatchesPacked) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(24);
  for (DType dt : kFloatTypes)
    for (auto [n, nkv, D] : {std::tuple<int64_t, int64_t, int64_t>{14, 2, 64}, {28, 4, 128}, {3, 1, 12}}) {
      OpsLayout lg(*gpu, {7, 130, 1});
      const int64_t T = lg.total, W = (n + 2 * nkv) * D, qk = (n + nkv) * D;
      const std::string tag = std::string(dtype_name(dt)) + " n=" + std::to_string(n) + " D=" + std::to_string(D);
      OpsTensor inv_freq(*gpu, DType::F32, {D / 2});
      inv_freq.set(cpu::rope_default_inv_freq(D, 1e6));
      const RopeFreqs f{inv_freq.t, 1.25f};
      const std::vector<float> values = random_uniform(size_t(T * W), rng);
      for (bool forward : {true, false}) {
        OpsTensor fused(*gpu, dt, {T, W}), packed(*gpu, dt, {T, n + nkv, D});
        fused.set(values);
        Tensor heads = fused.t.cols(0, qk).view({T, n + nkv, D});
        gpu->copy(packed.t, heads);
        forward ? gpu->rope_fwd(heads, lg.seq, f) : gpu->rope_bwd(heads, lg.seq, f);
        forward ? gpu->rope_fwd(packed.t, lg.seq, f) : gpu->rope_bwd(packed.t, lg.seq, f);
        const std::vector<float> got = fused.get(), want = packed.get();
        const int64_t bad = first_failing(T * W, [&](int64_t i) {
          const int64_t t = i / W, c = i % W;
          return got[size_t(i)] == (c < qk ? want[size_t(t * qk + c)] : as_stored({values[size_t(i)]}, dt)[0]);
        });
        EXPECT_EQ(bad, -1) << (forward ? "rope_fwd " : "rope_bwd ") << tag << " token " << bad / W << " column "
                           << bad % W;
      }
    }
}

TEST(GpuSwiGlu, ForwardAndBackwardMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(23);
  for (DType dt : kFloatTypes)
    // I = 100 and 37: rows that are not whole 16-byte vectors (the element-at-a-time kernels)
    for (auto [T, I] : {std::pair<int64_t, int64_t>{3, 128}, {67, 4864}, {33, 18944}, {5, 100}, {4, 37}}) {
      const std::string tag = std::string(dtype_name(dt)) + " T=" + std::to_string(T) + " I=" + std::to_string(I);
      Both gu(*cpu, *gpu, dt, {T, 2 * I}, random_uniform(size_t(T * 2 * I), rng, -4.0f, 4.0f));
      Both out(*cpu, *gpu, dt, {T, I});
      cpu->swiglu_fwd(gu.c.t, out.c.t);
      gpu->swiglu_fwd(gu.g.t, out.g.t);
      out.expect_close(tolerance(dt), "swiglu_fwd " + tag);
      Both dout(*cpu, *gpu, dt, {T, I}, random_uniform(size_t(T * I), rng)), dgu(*cpu, *gpu, dt, {T, 2 * I});
      cpu->swiglu_bwd(dout.c.t, gu.c.t, dgu.c.t);
      gpu->swiglu_bwd(dout.g.t, gu.g.t, dgu.g.t);
      dgu.expect_close(tolerance(dt), "swiglu_bwd " + tag);
      gpu->swiglu_bwd(dout.g.t, gu.g.t, gu.g.t);  // in place, as the model's backward runs it: the same bits
      EXPECT_EQ(read_gpu_result(gu.g, "swiglu_bwd in place"), read_gpu_result(dgu.g, "swiglu_bwd")) << tag;
    }
}

}  // namespace
}  // namespace qsft::test
