// Attention micro-benchmark: every implementation of the CUDA attention (kernels/attention_cuda.h: wmma, mma with
// Large and Small tiles, and the kernels/dev variants) at the Qwen2.5-7B (28/4 heads, D = 128) and 0.5B (14/2,
// D = 64) shapes over 4 packed causal sequences of 4096 tokens. Median of CUDA-event times over the repeats (inputs
// of 88-300 MB, beyond the 50-60 MB L2). FLOPs counted as FlashAttention's benchmarks do:
//   forward  = 4 sum_s (L_s^2 / 2) n D          (q k^T and P V, 2 FLOPs per multiply-add, causal half)
//   backward = 2.5 x forward                    (5 products of that size: q k^T, dout v^T, dV, dK, dQ)
// so a backward that recomputes more (the deterministic 7-product one) is charged for 5. The max abs difference of
// every variant's out, dq, dk and dv from the first variant's checks that the timed kernels agree (dev variants
// have no GPU test until promoted); a second, untimed pass compares them on packed sequences of odd lengths (1 to
// 2100 tokens: tiles that straddle sequence starts, partial last tiles) and a padded head dim (80). The environment
// switches (QSFT_ATTENTION*) do not apply: each variant names its configuration.
// bench/attention_torch_baseline.py times torch's scaled_dot_product_attention (flash backend) the same way.
//   gpu_attention_bench [reps]     (default 20)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "engine/base/half.h"

#if QSFT_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/attention_cuda.h"
#include "kernels/dev/attention/variants.h"

namespace qsft {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

struct Shape {
  const char* name;
  int64_t n, nkv, D;
};
constexpr Shape kShapes[] = {{"7B", 28, 4, 128}, {"0.5B", 14, 2, 64}};
constexpr Shape kPaddedShape = {"padded D", 4, 2, 80};
const std::vector<int> kTimedLengths = {4096, 4096, 4096, 4096};
const std::vector<int> kOddLengths = {1, 77, 300, 129, 1000, 2100, 63};

struct DeviceBuf {
  explicit DeviceBuf(size_t bytes) { check(cudaMalloc(&p, bytes), "cudaMalloc"); }
  ~DeviceBuf() { cudaFree(p); }
  DeviceBuf(const DeviceBuf&) = delete;
  DeviceBuf& operator=(const DeviceBuf&) = delete;
  void* p = nullptr;
};

void fill_bf16(void* dst, size_t count, std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<uint16_t> h(count);
  for (auto& x : h) x = f32_to_bf16(dist(rng));
  check(cudaMemcpy(dst, h.data(), count * 2, cudaMemcpyHostToDevice), "upload");
}
std::vector<float> download_bf16(const void* src, size_t count) {
  std::vector<uint16_t> h(count);
  check(cudaMemcpy(h.data(), src, count * 2, cudaMemcpyDeviceToHost), "download");
  std::vector<float> f(count);
  for (size_t i = 0; i < count; ++i) f[i] = bf16_to_f32(h[i]);
  return f;
}
double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0.0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

// Median milliseconds of fn over reps runs, each between two CUDA events, after 2 warm-up runs.
template <class F>
double median_ms(F&& fn, int reps) {
  for (int i = 0; i < 2; ++i) fn();
  std::vector<cudaEvent_t> ev(2 * size_t(reps));
  for (auto& e : ev) check(cudaEventCreate(&e), "cudaEventCreate");
  for (int r = 0; r < reps; ++r) {
    check(cudaEventRecord(ev[2 * r]), "record");
    fn();
    check(cudaEventRecord(ev[2 * r + 1]), "record");
  }
  check(cudaEventSynchronize(ev.back()), "sync");
  std::vector<float> ms(size_t(reps), 0.0f);
  for (int r = 0; r < reps; ++r) check(cudaEventElapsedTime(&ms[r], ev[2 * r], ev[2 * r + 1]), "elapsed");
  for (auto& e : ev) cudaEventDestroy(e);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Every variant on packed causal sequences of these lengths: timed over reps runs (median), or run once when
// reps is 0 (agreement only).
void bench_shape(const Shape& sh, const std::vector<int>& lengths, int reps) {
  std::vector<int32_t> cu(lengths.size() + 1, 0);
  double pairs = 0.0;  // sum_s L_s^2 / 2
  for (size_t i = 0; i < lengths.size(); ++i) {
    cu[i + 1] = cu[i] + lengths[i];
    pairs += double(lengths[i]) * lengths[i] / 2;
  }
  const int64_t T = cu.back();
  DeviceBuf cu_d(cu.size() * 4);
  check(cudaMemcpy(cu_d.p, cu.data(), cu.size() * 4, cudaMemcpyHostToDevice), "upload");
  cuda::AttentionShape s{T, sh.n, sh.nkv, sh.D, static_cast<const int32_t*>(cu_d.p), int(lengths.size())};

  const size_t nq = size_t(T * sh.n * sh.D), nk = size_t(T * sh.nkv * sh.D);
  DeviceBuf q(nq * 2), k(nk * 2), v(nk * 2), out(nq * 2), dout(nq * 2), dq(nq * 2), dk(nk * 2), dv(nk * 2);
  DeviceBuf lse(size_t(sh.n * T) * 4), scratch(cuda::attention_bwd_scratch_bytes(s, cuda::AttentionBwdMode::AtomicDq));
  std::mt19937 rng(7);
  fill_bf16(q.p, nq, rng, -2.0f, 2.0f);
  fill_bf16(k.p, nk, rng, -2.0f, 2.0f);
  fill_bf16(v.p, nk, rng, -1.0f, 1.0f);
  fill_bf16(dout.p, nq, rng, -1.0f, 1.0f);

  const double fwd_flops = 4.0 * pairs * double(sh.n) * double(sh.D);
  const double bwd_flops = 2.5 * fwd_flops;
  std::printf("\n%s: T = %lld (%zu causal sequences%s), heads %lld/%lld, D = %lld; forward %.2f TFLOP, backward %.2f "
              "TFLOP%s\n",
              sh.name, (long long)T, lengths.size(), reps ? "" : " of odd lengths", (long long)sh.n,
              (long long)sh.nkv, (long long)sh.D, fwd_flops * 1e-12, bwd_flops * 1e-12,
              reps ? "" : "; agreement only (one untimed run)");
  std::printf("  %-32s %10s %10s %10s %10s %12s %12s %12s %12s\n", "variant", "fwd ms", "fwd TF/s", "bwd ms",
              "bwd TF/s", "|out-first|", "|dq-first|", "|dk-first|", "|dv-first|");
  std::vector<float> out0, dq0, dk0, dv0;
  for (const dev::AttentionVariant& var : dev::attention_variants()) {
    if (!var.supports(sh.D)) {
      std::printf("  %-32s skipped: its supports(D = %lld) is false on this device\n", var.name, (long long)sh.D);
      continue;
    }
    auto fwd = [&] { var.fwd(s, q.p, k.p, v.p, out.p, static_cast<float*>(lse.p), nullptr); };
    auto bwd = [&] {
      var.bwd(s, dout.p, q.p, k.p, v.p, out.p, static_cast<const float*>(lse.p), dq.p, dk.p, dv.p, scratch.p, nullptr);
    };
    double fwd_ms = NAN, bwd_ms = NAN;
    if (reps > 0) {
      fwd_ms = median_ms(fwd, reps);
      bwd_ms = median_ms(bwd, reps);
    } else {
      fwd();
      bwd();
    }
    check(cudaDeviceSynchronize(), var.name);
    const std::vector<float> o = download_bf16(out.p, nq), g = download_bf16(dq.p, nq);
    const std::vector<float> gk = download_bf16(dk.p, nk), gv = download_bf16(dv.p, nk);
    if (out0.empty()) out0 = o, dq0 = g, dk0 = gk, dv0 = gv;
    std::printf("  %-32s %10.3f %10.1f %10.3f %10.1f %12.2e %12.2e %12.2e %12.2e\n", var.name, fwd_ms,
                fwd_flops / fwd_ms * 1e-9, bwd_ms, bwd_flops / bwd_ms * 1e-9, max_abs_diff(o, out0),
                max_abs_diff(g, dq0), max_abs_diff(gk, dk0), max_abs_diff(gv, dv0));
  }
}

}  // namespace
}  // namespace qsft

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // the rows printed so far survive a variant that faults
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("skipped: no CUDA device\n");
    return 0;
  }
  const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 20;
  cudaDeviceProp prop{};
  qsft::check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  std::printf("attention benchmark on %s (%d SMs, %zu KiB shared memory per block opt-in), median of %d runs\n",
              prop.name, prop.multiProcessorCount, prop.sharedMemPerBlockOptin / 1024, reps);
  for (const auto& sh : qsft::kShapes) qsft::bench_shape(sh, qsft::kTimedLengths, reps);
  for (const auto& sh : qsft::kShapes) qsft::bench_shape(sh, qsft::kOddLengths, 0);
  qsft::bench_shape(qsft::kPaddedShape, qsft::kOddLengths, 0);
  return 0;
}
#else
#include <cstdio>
int main() {
  std::printf("skipped: built without CUDA\n");
  return 0;
}
#endif
