// Micro-benchmarks of the CUDA ops at Qwen2.5-0.5B and 7B shapes with 8k-32k tokens (packed sequences of 4096):
// median time over repeats, TFLOP/s or GB/s, and the fraction of the two ceilings measured in the same run:
// a large bf16 cuBLASLt GEMM (through Ops::gemm) and a large device-to-device copy (Ops::copy, bytes read +
// written). Each repeat is timed alone with CUDA events (device time, no host clock), after a 256 MiB write that
// evicts the 50 MB L2, so every op reads its inputs from device memory as it does in a training step.
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
#include "kernels/runtime_cuda.h"
#endif

#if defined(QSFT_HAVE_CUDA)
namespace qsft {
namespace {

struct Shape {
  const char* name;
  int64_t H, I, n, nkv, D, V;
};
constexpr Shape kShapes[] = {{"0.5B", 896, 4864, 14, 2, 64, 151936}, {"7B", 3584, 18944, 28, 4, 128, 152064}};
constexpr int64_t kSeqLen = 4096;  // packed sequence length for attention

// A device tensor owned by the bench, filled with random values (never zeros: see METHOD.md).
class Buf {
 public:
  Buf(Ops& ops, DType dt, std::initializer_list<int64_t> shape, std::mt19937& rng) : ops_(ops) {
    t = Tensor(nullptr, dt, shape, Device::CUDA);
    t.data = ops.alloc_bytes(t.nbytes());
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    if (dt == DType::BF16) {
      std::vector<uint16_t> h(size_t(t.numel()));
      for (auto& x : h) x = f32_to_bf16(dist(rng));
      ops.copy_to_device(t.data, h.data(), t.nbytes());
    } else if (dt == DType::F32) {
      std::vector<float> h(size_t(t.numel()));
      for (auto& x : h) x = dist(rng) * 0.01f;
      ops.copy_to_device(t.data, h.data(), t.nbytes());
    }
  }
  ~Buf() { ops_.free_bytes(t.data); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  void set_i32(const std::vector<int32_t>& v) { ops_.copy_to_device(t.data, v.data(), v.size() * 4); }
  Tensor t;

 private:
  Ops& ops_;
};

// Median device seconds of fn over `reps` repeats after 2 warm-up runs, each repeat timed alone by CUDA events
// after the L2 is flushed. The events go on the legacy default stream, which orders with the backend's blocking
// stream (kernels/runtime_cuda.h): start waits for the flush, stop for fn's work.
double median_seconds(Ops& ops, const std::function<void()>& fn, int reps = 7) {
  static constexpr int64_t kFlushBytes = int64_t(256) << 20;  // > 5x the H100/H200 L2 (50 MB)
  static Tensor flush = [&ops] {
    Tensor t(nullptr, DType::I32, {kFlushBytes / 4}, Device::CUDA);
    t.data = ops.alloc_bytes(t.nbytes());
    return t;
  }();
  for (int i = 0; i < 2; ++i) fn();
  cuda::EventTimer timer;
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    ops.zero(flush);
    timer.start();
    fn();
    t.push_back(timer.stop_ms() * 1e-3);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Ceilings {
  double tflops, gbps;
};

Ceilings measure_ceilings(Ops& ops, std::mt19937& rng) {
  const int64_t N = 8192;
  Buf a(ops, DType::BF16, {N, N}, rng), b(ops, DType::BF16, {N, N}, rng), c(ops, DType::BF16, {N, N}, rng);
  const double tg = median_seconds(ops, [&] { ops.gemm(Mat::of(a.t), false, Mat::of(b.t), true, Mat::of(c.t), 1, 0); });
  const int64_t bytes = int64_t(1) << 30;
  Buf src(ops, DType::I32, {bytes / 4}, rng), dst(ops, DType::I32, {bytes / 4}, rng);
  const double tc = median_seconds(ops, [&] { ops.copy(dst.t, src.t); });
  return {2.0 * N * N * N / tg / 1e12, 2.0 * double(bytes) / tc / 1e9};
}

struct Row {
  std::string op, shape;
  int64_t T;
  double ms, rate;  // rate: TFLOP/s or GB/s
  bool flops;
  double fraction;
};

void print_row(const Row& r) {
  std::printf("| %-22s | %-4s | %6lld | %9.3f | %9.1f %-6s | %5.1f%% |\n", r.op.c_str(), r.shape.c_str(),
              static_cast<long long>(r.T), r.ms, r.rate, r.flops ? "TFLOP/s" : "GB/s", 100.0 * r.fraction);
}

void bench_shape(Ops& ops, const Shape& s, int64_t T, const Ceilings& ceil, std::mt19937& rng) {
  const DType B = DType::BF16;
  auto report = [&](const std::string& op, double seconds, double flops, double bytes) {
    const bool is_flops = flops > 0;
    const double rate = is_flops ? flops / seconds / 1e12 : bytes / seconds / 1e9;
    print_row({op, s.name, T, seconds * 1e3, rate, is_flops, rate / (is_flops ? ceil.tflops : ceil.gbps)});
  };
  const int64_t qo = s.n * s.D, kvo = s.nkv * s.D;
  Buf x(ops, B, {T, s.H}, rng), y(ops, B, {T, s.H}, rng), w(ops, B, {s.H}, rng), rstd(ops, DType::F32, {T}, rng);
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
    report("swiglu_fwd", t4, 0, 2.0 * T * 3 * s.I);
    Buf dgu(ops, B, {T, 2 * s.I}, rng);
    const double t5 = median_seconds(ops, [&] { ops.swiglu_bwd(act.t, gu.t, dgu.t); });
    report("swiglu_bwd", t5, 0, 2.0 * T * 5 * s.I);
  }
  {
    const double t1 = median_seconds(ops, [&] { ops.rmsnorm_fwd(x.t, w.t, 1e-6f, y.t, rstd.t); });
    report("rmsnorm_fwd", t1, 0, 2.0 * 2 * T * s.H);
    Buf dx(ops, B, {T, s.H}, rng);
    const double t2 = median_seconds(ops, [&] { ops.rmsnorm_bwd(y.t, x.t, w.t, rstd.t, dx.t); });
    report("rmsnorm_bwd", t2, 0, 2.0 * 4 * T * s.H);
  }
  {
    const int64_t S = T / kSeqLen;
    std::vector<int32_t> pos(static_cast<size_t>(T)), cu(static_cast<size_t>(S + 1));
    for (int64_t t = 0; t < T; ++t) pos[size_t(t)] = int32_t(t % kSeqLen);
    for (int64_t i = 0; i <= S; ++i) cu[size_t(i)] = int32_t(i * kSeqLen);
    Buf p(ops, DType::I32, {T}, rng), c(ops, DType::I32, {S + 1}, rng);
    p.set_i32(pos);
    c.set_i32(cu);
    const SeqLayout seq{p.t, c.t, int(S), int(kSeqLen)};
    Buf q(ops, B, {T, s.n, s.D}, rng), k(ops, B, {T, s.nkv, s.D}, rng), v(ops, B, {T, s.nkv, s.D}, rng);
    Buf out(ops, B, {T, s.n, s.D}, rng), lse(ops, DType::F32, {s.n, T}, rng);
    Buf inv_freq(ops, DType::F32, {s.D / 2}, rng);  // values do not matter for the timing
    const RopeFreqs rope{inv_freq.t, 1.0f};
    const double tr = median_seconds(ops, [&] { ops.rope_fwd(q.t, seq, rope); });
    report("rope_fwd (q)", tr, 0, 2.0 * 2 * T * qo);
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
  {
    Buf ids(ops, DType::I32, {T}, rng), table(ops, B, {s.V, s.H}, rng);
    std::vector<int32_t> id(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) id[size_t(t)] = int32_t((t * 104729) % s.V);
    ids.set_i32(id);
    const double t = median_seconds(ops, [&] { ops.embedding_fwd(ids.t, table.t, x.t); });
    report("embedding_fwd", t, 0, 2.0 * 2 * T * s.H);
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
  print_row({"adamw_step", "7B", P, ta * 1e3, 28.0 * P / ta / 1e9, false, 28.0 * P / ta / 1e9 / ceil.gbps});
  const double tn = median_seconds(ops, [&] { ops.sum_squares(g.t); });
  print_row({"sum_squares (grad norm)", "7B", P, tn * 1e3, 4.0 * P / tn / 1e9, false, 4.0 * P / tn / 1e9 / ceil.gbps});
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
  std::printf("ceilings: bf16 GEMM 8192^3 %.1f TFLOP/s, device copy %.1f GB/s (read + write)\n", ceil.tflops,
              ceil.gbps);
  std::printf("| %-22s | %-4s | %6s | %9s | %17s | %6s |\n", "op", "size", "tokens", "ms", "rate", "ceil");
  std::printf("|%s|\n", std::string(86, '-').c_str());
  for (const Shape& s : kShapes)
    for (int64_t T : {int64_t(8192), int64_t(16384), int64_t(32768)}) {
      if (quick && T > 8192) continue;
      bench_shape(*ops, s, T, ceil, rng);
    }
  bench_optimizer(*ops, ceil, rng);
  return 0;
#endif
}
