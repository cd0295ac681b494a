#include "kernels/embedding_cuda.h"
#include "kernels/kernel_util_cuda.h"
#include "kernels/rng.h"

namespace qsft::cuda {
namespace {

// One warp per output row, kGatherRows rows a block; 16-byte vectors when the row allows (V values of `Vec`), else
// elements. Each lane loads kUnroll vectors before storing them: with one load then one store per step the gather
// reached 77 % of the copy bandwidth. One block of 128 threads per row reached 92 % at H = 3584 but 66 % at H = 896
// (112 vectors: one per thread, a block's whole life one load and one store; H200, bench/gpu-runs/2026-11-30-45ffbc3).
constexpr int kUnroll = 4;
constexpr int kGatherRows = 8;
template <class Vec>
__global__ void __launch_bounds__(32 * kGatherRows)
    gather_rows_kernel(const int32_t* ids, int64_t T, const Vec* table, int64_t V, int64_t row_vecs, Vec* out) {
  const int64_t t = int64_t(blockIdx.x) * kGatherRows + threadIdx.x / 32;
  if (t >= T) return;  // the whole warp
  const int lane = threadIdx.x & 31;
  const int32_t id = ids[t];
  Vec* dst = out + t * row_vecs;
  if (id < 0 || id >= V) {
    for (int64_t j = lane; j < row_vecs; j += 32) {
      Vec nan;
      memset(&nan, 0xff, sizeof nan);  // all-ones bits: NaN in fp32 and bf16
      dst[j] = nan;
    }
    return;
  }
  const Vec* src = table + int64_t(id) * row_vecs;
  for (int64_t j0 = lane; j0 < row_vecs; j0 += kUnroll * 32) {
    Vec v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (j0 + u * 32 < row_vecs) v[u] = src[j0 + u * 32];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (j0 + u * 32 < row_vecs) dst[j0 + u * 32] = v[u];
  }
}

template <int W, class T>
__global__ void neftune_kernel(T* x, int64_t n, float scale, uint64_t seed) {
  // One hash per 4 elements (rng::uniforms16). _rn intrinsics: no fma contraction, so the value before the store
  // rounds exactly as the CPU op's x += s * u.
  grid_stride_vec<W>(n, [&](auto w, int64_t i) {
    constexpr int N = decltype(w)::value;
    float a[N], u[N];
    load_n<N>(x + i, a);
    rng::uniforms16<N>(seed, uint64_t(i), u);
#pragma unroll
    for (int k = 0; k < N; ++k) a[k] = __fadd_rn(a[k], __fmul_rn(scale, __fsub_rn(__fmul_rn(2.0f, u[k]), 1.0f)));
    store_n<N>(x + i, a);
  });
}

}  // namespace

void embedding_fwd(DType dt, const int32_t* ids, const void* table, int64_t T, int64_t V, int64_t H, void* out,
                   void* stream) {
  if (T == 0) return;
  const size_t row_bytes = size_t(H) * dtype_size(dt);
  const bool vec16 =
      row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(table) % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0;
  const unsigned blocks = unsigned((T + kGatherRows - 1) / kGatherRows), threads = 32 * kGatherRows;
  const cudaStream_t s = as_stream(stream);
  if (vec16) {
    gather_rows_kernel<uint4><<<blocks, threads, 0, s>>>(ids, T, static_cast<const uint4*>(table), V,
                                                         int64_t(row_bytes / 16), static_cast<uint4*>(out));
  } else if (dt == DType::F32) {
    gather_rows_kernel<float>
        <<<blocks, threads, 0, s>>>(ids, T, static_cast<const float*>(table), V, H, static_cast<float*>(out));
  } else {
    QSFT_CHECK(dt == DType::BF16, std::string("embedding dtype ") + dtype_name(dt));
    gather_rows_kernel<uint16_t>
        <<<blocks, threads, 0, s>>>(ids, T, static_cast<const uint16_t*>(table), V, H, static_cast<uint16_t*>(out));
  }
  QSFT_CUDA_CHECK_LAUNCH();
}

void neftune_noise(DType dt, void* x, int64_t n, float scale, uint64_t seed, void* stream) {
  if (n == 0) return;
  dispatch_float(dt, "neftune_noise", [&](auto tag) {
    using T = decltype(tag);
    launch_vec_or_scalar<kVec<T>>(aligned16(x), [&](auto w) {
      constexpr int W = decltype(w)::value;
      neftune_kernel<W, T><<<grid_for(n / W), kThreads, 0, as_stream(stream)>>>(static_cast<T*>(x), n, scale, seed);
    });
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
