// Micro-benchmarks of the CUDA ops at Qwen2.5-0.5B and 7B shapes with 8k-32k tokens (packed sequences of 4096):
// median time over repeats, TFLOP/s or GB/s, and the fraction of the two ceilings measured in the same run:
// a large bf16 cuBLASLt GEMM (through Ops::gemm) and a 1 GiB device-to-device copy, the faster of cudaMemcpy and
// a plain 16-byte-word copy kernel (bytes read + written). A memory-bound op's GB/s counts the bytes it must move
// (each input read once, each output written once), so its share of the copy ceiling is its efficiency (goal >= 85%).
// Each repeat is timed alone with CUDA events (device time, no host clock), after a 256 MiB write that evicts the
// 50 MB L2, so every op reads its inputs from device memory as it does in a training step. The memory-bound ops of
// the residual stream run on at least 4x the L2 of input (more tokens than the GEMM rows at 0.5B): on inputs that
// fit the L2 their writes stay in it and launch latency dominates, so "% of copy" means nothing there; the summary
// judges only rows whose inputs exceed 2x the L2 and marks the others "in L2". Then the LM head +
// cross-entropy at the 7B shape with every row pass of kernels/dev/cross_entropy, and the LoRA variants (the B term
// as a beta = 1 GEMM or by concatenated K; stacked A; the A projections with dropout fused or not).
//   gpu_ops_bench [--quick]   (--quick: 8k tokens only)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/base/half.h"
#include "engine/ops.h"
#if defined(QSFT_HAVE_CUDA)
#include "bench/gpu_ops_bench.h"
#include "kernels/elementwise_cuda.h"
#include "kernels/runtime_cuda.h"
#endif

#if defined(QSFT_HAVE_CUDA)
namespace qsft {

std::vector<Row> g_rows;  // every printed row, for the memory-bound summary at the end

void print_row(const Row& r) {
  g_rows.push_back(r);
  std::printf("| %-22s | %-4s | %6lld | %9.3f | %9.1f %-6s | %5.1f%% |%s\n", r.op.c_str(), r.shape.c_str(),
              static_cast<long long>(r.T), r.ms, r.rate, r.flops ? "TFLOP/s" : "GB/s", 100.0 * r.fraction,
              r.flops || judged(r) ? ""
              : r.in_bytes > 0     ? " in L2: not judged"
                                   : " latency: not judged");
}

namespace {

struct Shape {
  const char* name;
  int64_t H, I, n, nkv, D, V;
};
constexpr Shape kShapes[] = {{"0.5B", 896, 4864, 14, 2, 64, 151936}, {"7B", 3584, 18944, 28, 4, 128, 152064}};
constexpr int64_t kSeqLen = 4096;  // packed sequence length for attention

Ceilings measure_ceilings(Ops& ops, std::mt19937& rng) {
  const int64_t N = 8192;
  Buf a(ops, DType::BF16, {N, N}, rng), b(ops, DType::BF16, {N, N}, rng), c(ops, DType::BF16, {N, N}, rng);
  const double tg = median_seconds(ops, [&] { ops.gemm(Mat::of(a.t), false, Mat::of(b.t), true, Mat::of(c.t), 1, 0); });
  const int64_t bytes = int64_t(1) << 30;
  Buf src(ops, DType::I32, {bytes / 4}, rng), dst(ops, DType::I32, {bytes / 4}, rng);
  const double tc = median_seconds(ops, [&] { ops.copy(dst.t, src.t); });  // cudaMemcpyAsync D2D
  const double tk = median_seconds(ops, [&] { cuda::copy_words(dst.t.data, src.t.data, size_t(bytes), nullptr); });
  const double memcpy_gbps = 2.0 * double(bytes) / tc / 1e9, kernel_gbps = 2.0 * double(bytes) / tk / 1e9;
  return {2.0 * N * N * N / tg / 1e12, std::max(memcpy_gbps, kernel_gbps), memcpy_gbps, kernel_gbps};
}

// Packed sequences of kSeqLen tokens over T tokens (T a multiple of kSeqLen): positions and cu_seqlens on the device.
struct PackedSeqs {
  PackedSeqs(Ops& ops, int64_t T, std::mt19937& rng)
      : S(T / kSeqLen), pos(ops, DType::I32, {T}, rng), cu(ops, DType::I32, {S + 1}, rng) {
    std::vector<int32_t> p(static_cast<size_t>(T)), c(static_cast<size_t>(S + 1));
    for (int64_t t = 0; t < T; ++t) p[size_t(t)] = int32_t(t % kSeqLen);
    for (int64_t i = 0; i <= S; ++i) c[size_t(i)] = int32_t(i * kSeqLen);
    pos.set_i32(p);
    cu.set_i32(c);
  }
  SeqLayout layout() const { return {pos.t, cu.t, int(S), int(kSeqLen)}; }
  int64_t S;
  Buf pos, cu;
};

// report(op, seconds, flops, bytes moved, bytes read) for shape s at T tokens: TFLOP/s when flops > 0, else GB/s.
auto reporter(const Shape& s, int64_t T, const Ceilings& ceil) {
  return [&s, T, &ceil](const std::string& op, double seconds, double flops, double bytes, double in_bytes = 0) {
    const bool is_flops = flops > 0;
    const double rate = is_flops ? flops / seconds / 1e12 : bytes / seconds / 1e9;
    print_row({op, s.name, T, seconds * 1e3, rate, is_flops, rate / (is_flops ? ceil.tflops : ceil.gbps), in_bytes});
  };
}

// Tokens for the residual stream's memory-bound ops: [T, H] bf16 of at least 4x the L2, in whole sequences.
int64_t memory_bound_tokens(const Shape& s) {
  const int64_t T = int64_t(4 * kL2Bytes) / (2 * s.H);
  return (T + kSeqLen - 1) / kSeqLen * kSeqLen;
}

// The memory-bound ops over the residual stream [T, H] (bf16) and q [T, n, D]: GB/s of the bytes each must move.
void bench_memory_bound(Ops& ops, const Shape& s, int64_t T, const Ceilings& ceil, std::mt19937& rng) {
  const DType B = DType::BF16;
  const auto report = reporter(s, T, ceil);
  const double e = 2.0 * T * s.H;  // bytes of one [T, H] bf16 tensor
  Buf x(ops, B, {T, s.H}, rng), y(ops, B, {T, s.H}, rng), w(ops, B, {s.H}, rng), rstd(ops, DType::F32, {T}, rng);
  report("add_inplace", median_seconds(ops, [&] { ops.add_inplace(y.t, x.t); }), 0, 3 * e, 2 * e);
  report("scale_inplace", median_seconds(ops, [&] { ops.scale_inplace(y.t, 0.5f); }), 0, 2 * e, e);
  report("dropout", median_seconds(ops, [&] { ops.dropout(x.t, 0.1f, 7, y.t); }), 0, 2 * e, e);
  report("dropout_add", median_seconds(ops, [&] { ops.dropout_add(y.t, x.t, 0.1f, 7); }), 0, 3 * e, 2 * e);
  report("neftune_noise", median_seconds(ops, [&] { ops.neftune_noise(y.t, 1e-3f, 7); }), 0, 2 * e, e);
  report("rmsnorm_fwd", median_seconds(ops, [&] { ops.rmsnorm_fwd(x.t, w.t, 1e-6f, y.t, rstd.t); }), 0, 2 * e, e);
  {
    Buf dx(ops, B, {T, s.H}, rng);  // dx += the norm's input gradient: reads dy, x, dx; writes dx
    report("rmsnorm_bwd", median_seconds(ops, [&] { ops.rmsnorm_bwd(y.t, x.t, w.t, rstd.t, dx.t); }), 0, 4 * e, 3 * e);
  }
  {
    const PackedSeqs seqs(ops, T, rng);
    const int64_t qo = s.n * s.D;
    Buf q(ops, B, {T, s.n, s.D}, rng), inv_freq(ops, DType::F32, {s.D / 2}, rng);  // values do not matter here
    const RopeFreqs rope{inv_freq.t, 1.0f};
    const double qb = 2.0 * T * qo;
    report("rope_fwd (q)", median_seconds(ops, [&] { ops.rope_fwd(q.t, seqs.layout(), rope); }), 0, 2 * qb, qb);
    report("rope_bwd (q)", median_seconds(ops, [&] { ops.rope_bwd(q.t, seqs.layout(), rope); }), 0, 2 * qb, qb);
  }
  {
    Buf ids(ops, DType::I32, {T}, rng), table(ops, B, {s.V, s.H}, rng);
    std::vector<int32_t> id(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) id[size_t(t)] = int32_t((t * 104729) % s.V);
    ids.set_i32(id);
    report("embedding_fwd", median_seconds(ops, [&] { ops.embedding_fwd(ids.t, table.t, x.t); }), 0, 2 * e, e);
  }
}

void bench_shape(Ops& ops, const Shape& s, int64_t T, const Ceilings& ceil, std::mt19937& rng) {
  const DType B = DType::BF16;
  const auto report = reporter(s, T, ceil);
  const int64_t qo = s.n * s.D, kvo = s.nkv * s.D;
  Buf x(ops, B, {T, s.H}, rng), y(ops, B, {T, s.H}, rng);
  // GEMMs of one layer (forward)
  {
    Buf wqkv(ops, B, {qo + 2 * kvo, s.H}, rng), qkv(ops, B, {T, qo + 2 * kvo}, rng);
    Buf wgu(ops, B, {2 * s.I, s.H}, rng), gu(ops, B, {T, 2 * s.I}, rng), wd(ops, B, {s.H, s.I}, rng);
    const double t1 =
        median_seconds(ops, [&] { ops.gemm(Mat::of(x.t), false, Mat::of(wqkv.t), true, Mat::of(qkv.t), 1, 0); });
    report("gemm qkv", t1, 2.0 * T * s.H * (qo + 2 * kvo), 0);
    const double t2 =
        median_seconds(ops, [&] { ops.gemm(Mat::of(x.t), false, Mat::of(wgu.t), true, Mat::of(gu.t), 1, 0); });
    report("gemm gate_up", t2, 2.0 * T * s.H * 2 * s.I, 0);
    Buf act(ops, B, {T, s.I}, rng);
    const double t3 =
        median_seconds(ops, [&] { ops.gemm(Mat::of(act.t), false, Mat::of(wd.t), true, Mat::of(y.t), 1, 1); });
    report("gemm down (+=)", t3, 2.0 * T * s.I * s.H, 0);
    const double t4 = median_seconds(ops, [&] { ops.swiglu_fwd(gu.t, act.t); });
    report("swiglu_fwd", t4, 0, 2.0 * T * 3 * s.I, 2.0 * T * 2 * s.I);
    Buf dgu(ops, B, {T, 2 * s.I}, rng);
    const double t5 = median_seconds(ops, [&] { ops.swiglu_bwd(act.t, gu.t, dgu.t); });
    report("swiglu_bwd", t5, 0, 2.0 * T * 5 * s.I, 2.0 * T * 3 * s.I);
  }
  {
    const PackedSeqs seqs(ops, T, rng);
    const SeqLayout seq = seqs.layout();
    const int64_t S = seqs.S;
    Buf q(ops, B, {T, s.n, s.D}, rng), k(ops, B, {T, s.nkv, s.D}, rng), v(ops, B, {T, s.nkv, s.D}, rng);
    Buf out(ops, B, {T, s.n, s.D}, rng), lse(ops, DType::F32, {s.n, T}, rng);
    // causal: sum over sequences of L(L+1)/2 score pairs, 2 GEMMs of 2 D flops each
    const double pairs = double(S) * kSeqLen * (kSeqLen + 1) / 2;
    const double tf = median_seconds(
        ops, [&] { ops.attention_fwd(q.t, k.t, v.t, seq, out.t, lse.t); }, 5);
    report("attention_fwd", tf, 4.0 * pairs * s.n * s.D, 0);
    Buf dq(ops, B, {T, s.n, s.D}, rng), dk(ops, B, {T, s.nkv, s.D}, rng), dv(ops, B, {T, s.nkv, s.D}, rng);
    const double tb = median_seconds(
        ops, [&] { ops.attention_bwd(out.t, q.t, k.t, v.t, out.t, lse.t, seq, dq.t, dk.t, dv.t); }, 5);
    report("attention_bwd", tb, 2.5 * 4.0 * pairs * s.n * s.D, 0);  // the usual 5 GEMMs (we do 7: see docs)
  }
  {
    Buf W(ops, B, {s.V, s.H}, rng), targets(ops, DType::I32, {T}, rng), loss(ops, DType::F32, {1}, rng),
        correct(ops, DType::I32, {1}, rng), dh(ops, B, {T, s.H}, rng);
    std::vector<int32_t> tg(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) tg[size_t(t)] = int32_t((t * 7919) % s.V);
    targets.set_i32(tg);
    const double t = median_seconds(
        ops, [&] { ops.lm_head_ce(x.t, W.t, targets.t, 1e-4f, loss.t, correct.t, &dh.t); }, 3);
    report("lm_head_ce (fwd+dh)", t, 4.0 * T * s.H * s.V, 0);
  }
}

void bench_optimizer(Ops& ops, const Ceilings& ceil, std::mt19937& rng) {
  // LoRA r = 16 on all seven targets of the 7B: ~40M parameters
  const int64_t P = 40370176;
  Buf p(ops, DType::F32, {P}, rng), g(ops, DType::F32, {P}, rng), m(ops, DType::F32, {P}, rng),
      v(ops, DType::F32, {P}, rng);
  ops.zero(m.t);
  ops.zero(v.t);
  int64_t step = 0;
  const double ta = median_seconds(ops, [&] {
    ops.adamw_step(p.t, g.t, m.t, v.t, {1e-4, 0.9, 0.999, 1e-8, 0.0, ++step});
  });
  print_row({"adamw_step", "7B", P, ta * 1e3, 28.0 * P / ta / 1e9, false, 28.0 * P / ta / 1e9 / ceil.gbps, 16.0 * P});
  Buf pb(ops, DType::BF16, {P}, rng);
  const double tc = median_seconds(ops, [&] { ops.cast(p.t, pb.t); });  // the LoRA compute copy
  print_row({"cast f32->bf16", "7B", P, tc * 1e3, 6.0 * P / tc / 1e9, false, 6.0 * P / tc / 1e9 / ceil.gbps, 4.0 * P});
  // The grad norm as the trainer takes it (the sum back on the host: a synchronisation), then the same two kernels
  // leaving the sum on the device: the difference is the round trip (45ffbc3's run: 55 % of copy for the first).
  // The kernels' bandwidth is the second row's; the first is a latency (in_bytes 0: not judged).
  const double tn = median_seconds(ops, [&] { ops.sum_squares(g.t); });
  print_row({"sum_squares to host", "7B", P, tn * 1e3, 4.0 * P / tn / 1e9, false, 4.0 * P / tn / 1e9 / ceil.gbps});
  Buf sum(ops, DType::F32, {1}, rng);
  const double td = median_seconds(ops, [&] { ops.sum_squares(g.t, sum.t); });
  print_row({"sum_squares (on device)", "7B", P, td * 1e3, 4.0 * P / td / 1e9, false, 4.0 * P / td / 1e9 / ceil.gbps,
             4.0 * P});
}

// LoRA at the 7B shapes (T = 16384, H = 3584, r = 16), in TFLOP/s of the GEMM work (2 T out (H + r) for a Linear
// with its LoRA B term). y += s u B^T after the base GEMM y = x W^T: (a) as a second GEMM accumulating with beta = 1
// (the one-pass kernel of kernels/skinny_gemm.cu since 45ffbc3's run measured cuBLASLt's), or (b) folded into the base
// GEMM by concatenating K: [x | s u] [W | B]^T, K = H + r (operands concatenated here beforehand; in a step, u's GEMM
// would write s u into the columns after x, and the bf16 compute copy of B would sit after W's rows), or (c) first,
// written (beta 0), the base GEMM then adding onto it (beta 1: the model's order for q/k/v and gate/up since
// QSFT_LORA_FIRST). Then the A projections of q/k/v: three [r, H] GEMMs vs one with the A's stacked [3r, H].
void bench_lora(Ops& ops, const Ceilings& ceil, std::mt19937& rng) {
  const DType B = DType::BF16;
  const int64_t T = 16384, H = 3584, r = 16;
  const float s = 2.0f;
  auto report = [&](const std::string& op, double seconds, double flops) {
    const double rate = flops / seconds / 1e12;
    print_row({op, "7B", T, seconds * 1e3, rate, true, rate / ceil.tflops});
  };
  Buf x(ops, B, {T, H}, rng), u(ops, B, {T, 3 * r}, rng), xu(ops, B, {T, H + r}, rng);
  for (int64_t out : {int64_t(3584), int64_t(512), int64_t(18944)}) {
    Buf W(ops, B, {out, H}, rng), Bm(ops, B, {out, r}, rng), WB(ops, B, {out, H + r}, rng), y(ops, B, {T, out}, rng);
    const Mat uj = Mat::of(u.t.cols(0, r));
    const std::string o = " out " + std::to_string(out);
    const double t0 =
        median_seconds(ops, [&] { ops.gemm(Mat::of(x.t), false, Mat::of(W.t), true, Mat::of(y.t), 1, 0); });
    report("lora base" + o, t0, 2.0 * T * out * H);
    const double ta = median_seconds(ops, [&] {
      ops.gemm(Mat::of(x.t), false, Mat::of(W.t), true, Mat::of(y.t), 1, 0);
      ops.gemm(uj, false, Mat::of(Bm.t), true, Mat::of(y.t), s, 1);  // y += s u B^T
    });
    report("lora (a) beta=1" + o, ta, 2.0 * T * out * (H + r));
    const double tb =
        median_seconds(ops, [&] { ops.gemm(Mat::of(xu.t), false, Mat::of(WB.t), true, Mat::of(y.t), 1, 0); });
    report("lora (b) K=H+r" + o, tb, 2.0 * T * out * (H + r));
    const double tc = median_seconds(ops, [&] {                               // the model's order since QSFT_LORA_FIRST
      ops.gemm(uj, false, Mat::of(Bm.t), true, Mat::of(y.t), s, 0);           // y = s u B^T
      ops.gemm(Mat::of(x.t), false, Mat::of(W.t), true, Mat::of(y.t), 1, 1);  // y += x W^T
    });
    report("lora (c) LoRA first" + o, tc, 2.0 * T * out * (H + r));
    std::printf(
        "  out %lld: (a) base + beta=1 %.3f ms, (b) concatenated K %.3f ms, (c) LoRA written first, base "
        "beta=1 %.3f ms, base alone %.3f ms\n",
        static_cast<long long>(out), ta * 1e3, tb * 1e3, tc * 1e3, t0 * 1e3);
  }
  Buf A(ops, B, {3 * r, H}, rng);
  const double t3 = median_seconds(ops, [&] {
    for (int64_t j = 0; j < 3; ++j)
      ops.gemm(Mat::of(x.t), false, Mat::of(A.t.rows(j * r, (j + 1) * r)), true, Mat::of(u.t.cols(j * r, (j + 1) * r)),
               1, 0);
  });
  report("lora A q,k,v x3", t3, 2.0 * T * 3 * r * H);
  const double t1 = median_seconds(ops, [&] { ops.gemm(Mat::of(x.t), false, Mat::of(A.t), true, Mat::of(u.t), 1, 0); });
  report("lora A q,k,v stacked", t1, 2.0 * T * 3 * r * H);
}

// The LoRA up-projections' accumulations at the 7B r16 shapes, T = 16384: y += s u B^T over a Linear's output (out
// 3584; 18944, gate or up) and the backward's dx += sum_j dropout_j(du_j A_j) (in 3584 with n = 3, in 18944 with
// n = 1), by the one-pass kernel (kernels/skinny_gemm.cu; the table's row, judged as memory-bound: C read and
// written) and with it off (QSFT_SKINNY_GEMM=0: cuBLASLt's beta = 1 GEMM, for dx a GEMM into a scratch then
// dropout_add per member) on the line below it.
void bench_lora_accumulate(Ops& ops, const Ceilings& ceil, std::mt19937& rng) {
  const DType B = DType::BF16;
  const int64_t T = 16384, r = 16;
  auto both = [&](const std::string& op, double bytes, const auto& run) {
    const double tk = median_seconds(ops, run);
    setenv("QSFT_SKINNY_GEMM", "0", 1);
    const double tc = median_seconds(ops, run);
    unsetenv("QSFT_SKINNY_GEMM");
    print_row({op, "7B", T, tk * 1e3, bytes / tk / 1e9, false, bytes / tk / 1e9 / ceil.gbps, bytes / 2});
    std::printf("  %s: kernel %.3f ms, off %.3f ms (%.0f%% of copy): %.2fx\n", op.c_str(), tk * 1e3, tc * 1e3,
                100.0 * bytes / tc / 1e9 / ceil.gbps, tc / tk);
  };
  for (const int64_t out : {int64_t(3584), int64_t(18944)}) {
    Buf u(ops, B, {T, r}, rng), Bm(ops, B, {out, r}, rng), y(ops, B, {T, out}, rng);
    both("lora y += s u B^T out " + std::to_string(out), 4.0 * double(T * out),
         [&] { ops.gemm(Mat::of(u.t), false, Mat::of(Bm.t), true, Mat::of(y.t), 2.0f, 1.0f); });
  }
  const uint64_t seeds[3] = {21, 22, 23};
  for (const auto& shape : {std::pair<int64_t, int>{3584, 3}, std::pair<int64_t, int>{18944, 1}}) {
    const int64_t in = shape.first;  // named copies: a lambda may not capture a structured binding before C++20
    const int n = shape.second;
    Buf du(ops, B, {T, n * r}, rng), A(ops, B, {n * r, in}, rng), dx(ops, B, {T, in}, rng), g(ops, B, {T, in}, rng);
    both("lora dx dropout in " + std::to_string(in) + " n " + std::to_string(n), 4.0 * double(T * in), [&] {
      ops.lora_dx_dropout(du.t, A.t, 0.05f, {seeds, size_t(n)}, dx.t, g.t);
    });
  }
}

// The backward's B and u gradients of one LoRA member at the 7B r16 outputs (q/o 3584, k/v 512, gate/up 18944), T =
// 16384: Ops::lora_db_du (kernels/lora_db_du.cu: dy read once) against its two GEMMs (cuBLASLt: dy read twice). One
// line per shape, in GB/s of dy read once against the copy ceiling (read + write), outside the memory-bound summary.
void bench_lora_db_du(Ops& ops, const Ceilings& ceil, std::mt19937& rng) {
  const DType B = DType::BF16;
  const int64_t T = 16384, r = 16;
  for (const int64_t out : {int64_t(3584), int64_t(512), int64_t(18944)}) {
    Buf dy(ops, B, {T, out}, rng), u(ops, B, {T, r}, rng), Bm(ops, B, {out, r}, rng), du(ops, B, {T, r}, rng),
        dB(ops, DType::F32, {out, r}, rng), scratch(ops, B, {T, 2560}, rng);  // the partial sums: <= 66 MB here
    const double tf = median_seconds(ops, [&] { ops.lora_db_du(dy.t, u.t, Bm.t, 2.0f, dB.t, du.t, scratch.t); });
    const double tg = median_seconds(ops, [&] {
      ops.gemm(Mat::of(dy.t), true, Mat::of(u.t), false, Mat::of(dB.t), 2.0f, 1.0f);
      ops.gemm(Mat::of(dy.t), false, Mat::of(Bm.t), false, Mat::of(du.t), 2.0f, 0.0f);
    });
    const double bytes = 2.0 * double(T) * double(out);
    std::printf(
        "lora dB+du      7B T=%lld out=%lld r=%lld: fused %.3f ms (%.0f GB/s of dy, %.0f%% of copy), two GEMMs "
        "%.3f ms (%.0f GB/s, %.0f%%): %.2fx\n",
        static_cast<long long>(T), static_cast<long long>(out), static_cast<long long>(r), tf * 1e3, bytes / tf / 1e9,
        100.0 * bytes / tf / 1e9 / ceil.gbps, tg * 1e3, bytes / tg / 1e9, 100.0 * bytes / tg / 1e9 / ceil.gbps,
        tg / tf);
  }
}

// One line of bench_lora_dropout: fused and unfused times, GB/s of x read once and its share of the copy ceiling.
void print_lora_dropout_line(const char* what, int64_t T, int64_t in, int n, int64_t r, double fused, double unfused,
                             const Ceilings& ceil) {
  const double xb = 2.0 * double(T) * double(in);  // x read once
  std::printf(
      "lora %s 7B T=%lld in=%lld n=%d r=%lld: fused %.3f ms (%.0f GB/s of x, %.0f%% of copy), "
      "dropout+gemm %.3f ms (%.0f GB/s, %.0f%%): %.2fx\n",
      what, static_cast<long long>(T), static_cast<long long>(in), n, static_cast<long long>(r), fused * 1e3,
      xb / fused / 1e9, 100.0 * xb / fused / 1e9 / ceil.gbps, unfused * 1e3, xb / unfused / 1e9,
      100.0 * xb / unfused / 1e9 / ceil.gbps, unfused / fused);
}

// LoRA's A projections with dropout at the 7B r16 shapes (q/k/v and gate/up read [T, 3584], down [T, 18944]):
// Ops::lora_a_dropout (each member's mask applied where x is read, one launch) against what it replaces, each
// member's dropout into a scratch then its GEMM (QSFT_LORA_FUSED_DROPOUT=0); likewise the backward's A gradients
// (Ops::lora_da_dropout; 45ffbc3's fused dA kernel lost to dropout + GEMM, 0.74-0.99x: rewritten since). Rates in
// GB/s of x read once, against the copy ceiling (read + write); one line per shape, outside the memory-bound summary
// (these are GEMMs).
void bench_lora_dropout(Ops& ops, const Ceilings& ceil, std::mt19937& rng) {
  const DType B = DType::BF16;
  const int64_t r = 16;
  const float p = 0.05f;
  const uint64_t seeds[3] = {11, 12, 13};
  struct Case {
    int64_t in;
    int n;
  };
  for (int64_t T : {int64_t(4096), int64_t(16384)})
    for (const Case c : {Case{3584, 3}, Case{3584, 2}, Case{18944, 1}}) {
      const int64_t N = c.n * r;
      Buf x(ops, B, {T, c.in}, rng), A(ops, B, {N, c.in}, rng), u(ops, B, {T, N}, rng), xd(ops, B, {T, c.in}, rng);
      const std::span<const uint64_t> members(seeds, size_t(c.n));
      const double tf = median_seconds(ops, [&] { ops.lora_a_dropout(x.t, A.t, p, members, u.t, xd.t); });
      const double tu = median_seconds(ops, [&] {
        for (int j = 0; j < c.n; ++j) {
          ops.dropout(x.t, p, seeds[j], xd.t);
          ops.gemm(Mat::of(xd.t), false, Mat::of(A.t.rows(j * r, (j + 1) * r)), true,
                   Mat::of(u.t.cols(j * r, (j + 1) * r)), 1, 0);
        }
      });
      Buf dA(ops, DType::F32, {N, c.in}, rng);  // the backward's dA_j += du_j^T dropout_j(x), u standing for du
      const double gf = median_seconds(ops, [&] { ops.lora_da_dropout(u.t, x.t, p, members, dA.t, xd.t); });
      const double gu = median_seconds(ops, [&] {
        for (int j = 0; j < c.n; ++j) {
          ops.dropout(x.t, p, seeds[j], xd.t);
          ops.gemm(Mat::of(u.t.cols(j * r, (j + 1) * r)), true, Mat::of(xd.t), false,
                   Mat::of(dA.t.rows(j * r, (j + 1) * r)), 1, 1);
        }
      });
      print_lora_dropout_line("A dropout ", T, c.in, c.n, r, tf, tu, ceil);
      print_lora_dropout_line("dA dropout", T, c.in, c.n, r, gf, gu, ceil);
    }
}

// Memory-bound ops (GB/s rows) judged on inputs larger than 2x the L2: how many reach 80% of the copy ceiling
// (issue 13's bar) and 85% (the kernels' goal), the ones below 85% named; rows in the L2 only counted.
void print_memory_summary() {
  int n = 0, at80 = 0, at85 = 0, in_l2 = 0;
  std::string names;
  for (const Row& r : g_rows) {
    if (r.flops) continue;
    if (!judged(r)) {
      in_l2 += r.in_bytes > 0;
      continue;
    }
    ++n;
    at80 += r.fraction >= 0.80;
    at85 += r.fraction >= 0.85;
    if (r.fraction < 0.85) names += " " + r.op + "@" + r.shape + "/" + std::to_string(r.T);
  }
  std::printf("memory-bound (inputs > 2x the %.0f MiB L2; %d rows in the L2 not judged): %d of %d rows >= 80%% of the "
              "copy ceiling, %d >= 85%%; below 85%%:%s\n",
              kL2Bytes / (1 << 20), in_l2, at80, n, at85, names.empty() ? " none" : names.c_str());
}

}  // namespace
}  // namespace qsft
#endif

int main(int argc, char** argv) {
  using namespace qsft;
#if !defined(QSFT_HAVE_CUDA)
  (void)argc;
  (void)argv;
  std::printf("skipped: built without the CUDA backend\n");
  return 0;
#else
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  std::unique_ptr<Ops> ops;
  try {
    ops = make_cuda_ops();
  } catch (const std::exception& e) {
    std::printf("skipped: no CUDA device (%s)\n", e.what());
    return 0;
  }
  std::mt19937 rng(1);
  const auto ceil = measure_ceilings(*ops, rng);
  std::printf(
      "ceilings: bf16 GEMM 8192^3 %.1f TFLOP/s, device copy %.1f GB/s (read + write; cudaMemcpy %.1f, 16-byte copy "
      "kernel %.1f)\n",
      ceil.tflops, ceil.gbps, ceil.memcpy_gbps, ceil.kernel_gbps);
  std::printf("| %-22s | %-4s | %6s | %9s | %17s | %6s |\n", "op", "size", "tokens", "ms", "rate", "ceil");
  std::printf("|%s|\n", std::string(86, '-').c_str());
  for (const Shape& s : kShapes) {
    for (int64_t T : {int64_t(8192), int64_t(16384), int64_t(32768)}) {
      if (quick && T > 8192) continue;
      bench_shape(*ops, s, T, ceil, rng);
    }
    bench_memory_bound(*ops, s, memory_bound_tokens(s), ceil, rng);
  }
  bench_optimizer(*ops, ceil, rng);
  bench_lm_head_ce(*ops, ceil, rng);
  bench_lora(*ops, ceil, rng);
  bench_lora_accumulate(*ops, ceil, rng);
  bench_lora_dropout(*ops, ceil, rng);
  bench_lora_db_du(*ops, ceil, rng);
  print_memory_summary();
  return 0;
#endif
}
