#include "kernels/elementwise_cuda.h"
#include "kernels/kernel_util_cuda.h"
#include "kernels/rng.h"

namespace qsft::cuda {
namespace {

// Every kernel here is a grid-stride loop over W consecutive elements per step (16-byte vectors when the launcher
// found the pointers aligned, W = 1 otherwise), with the same per-element arithmetic at every width.
template <int W, class T>
__global__ void add_kernel(T* y, const T* x, int64_t n) {
  grid_stride_vec<W>(n, [&](auto w, int64_t i) {
    constexpr int N = decltype(w)::value;
    float a[N], b[N];
    load_n<N>(y + i, a);
    load_n<N>(x + i, b);
#pragma unroll
    for (int k = 0; k < N; ++k) a[k] += b[k];
    store_n<N>(y + i, a);
  });
}

template <int W, class T>
__global__ void scale_kernel(T* y, float s, int64_t n) {
  map_vec<W>(y, y, n, [&](float v, int64_t) { return v * s; });
}

// y = (Acc ? y : 0) + mask(x) / (1 - p): one hash per 4 elements of a 16-byte step, its 16-bit fields tested against
// the integer threshold (rng::keep_threshold16: the mask of uniform16 >= p). mixed_seed = rng::mix64(seed).
template <int W, bool Acc, class T>
__global__ void dropout_kernel(const T* x, int64_t n, uint32_t threshold, float keep_scale, uint64_t mixed_seed, T* y) {
  grid_stride_vec<W>(n, [&](auto w, int64_t i) {
    constexpr int N = decltype(w)::value;
    float a[N], b[N];
    bool keep[N];
    load_n<N>(x + i, a);
    rng::keeps16<N>(mixed_seed, uint64_t(i), threshold, keep);
    if constexpr (Acc) load_n<N>(y + i, b);
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const float d = dropout_value(a[k], keep[k], keep_scale);
      a[k] = Acc ? b[k] + d : d;
    }
    store_n<N>(y + i, a);
  });
}

// W = 8: two 16-byte fp32 loads, one 16-byte bf16 store (cols a multiple of 8, so a step stays in its row).
template <int W>
__global__ void cast_kernel(const float* src, int64_t rows, int64_t cols, int64_t ld, bf16* dst) {
  grid_stride_vec<W>(rows * cols, [&](auto w, int64_t i) {
    constexpr int N = decltype(w)::value;
    float a[N];
    load_n<N>(src + (i / cols) * ld + i % cols, a);
    store_n<N>(dst + i, a);
  });
}

// The copy-bandwidth ceiling of bench/gpu_ops_bench: 16-byte words, nothing else.
__global__ void copy_words_kernel(const uint4* src, int64_t words, uint4* dst) {
  QSFT_GRID_STRIDE(i, words) dst[i] = src[i];
}

}  // namespace

void add_inplace(DType dt, void* y, const void* x, int64_t n, void* stream) {
  if (n == 0) return;
  dispatch_float(dt, "add_inplace", [&](auto tag) {
    using T = decltype(tag);
    launch_vec_or_scalar<kVec<T>>(aligned16(y) && aligned16(x), [&](auto w) {
      constexpr int W = decltype(w)::value;
      add_kernel<W, T><<<grid_for(n / W), kThreads, 0, as_stream(stream)>>>(static_cast<T*>(y),
                                                                            static_cast<const T*>(x), n);
    });
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

void scale_inplace(DType dt, void* y, float s, int64_t n, void* stream) {
  if (n == 0) return;
  dispatch_float(dt, "scale_inplace", [&](auto tag) {
    using T = decltype(tag);
    launch_vec_or_scalar<kVec<T>>(aligned16(y), [&](auto w) {
      constexpr int W = decltype(w)::value;
      scale_kernel<W, T><<<grid_for(n / W), kThreads, 0, as_stream(stream)>>>(static_cast<T*>(y), s, n);
    });
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

template <bool Acc>
static void launch_dropout(DType dt, const void* x, int64_t n, float p, uint64_t seed, void* y, void* stream) {
  if (n == 0) return;
  dispatch_float(dt, "dropout", [&](auto tag) {
    using T = decltype(tag);
    launch_vec_or_scalar<kVec<T>>(aligned16(x) && aligned16(y), [&](auto w) {
      constexpr int W = decltype(w)::value;
      dropout_kernel<W, Acc, T><<<grid_for(n / W), kThreads, 0, as_stream(stream)>>>(
          static_cast<const T*>(x), n, rng::keep_threshold16(p), 1.0f / (1.0f - p), rng::mix64(seed),
          static_cast<T*>(y));
    });
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

void dropout(DType dt, const void* x, int64_t n, float p, uint64_t seed, void* y, void* stream) {
  launch_dropout<false>(dt, x, n, p, seed, y, stream);
}

void dropout_add(DType dt, const void* x, int64_t n, float p, uint64_t seed, void* y, void* stream) {
  launch_dropout<true>(dt, x, n, p, seed, y, stream);
}

void cast_f32_to_bf16_2d(const float* src, int64_t rows, int64_t cols, int64_t ld, void* dst, void* stream) {
  if (rows * cols == 0) return;
  const bool vec = aligned16(src) && aligned16(dst) && cols % 8 == 0 && ld % 4 == 0;
  launch_vec_or_scalar<8>(vec, [&](auto w) {
    constexpr int W = decltype(w)::value;
    cast_kernel<W><<<grid_for(rows * cols / W), kThreads, 0, as_stream(stream)>>>(src, rows, cols, ld,
                                                                                  static_cast<bf16*>(dst));
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

void copy_words(void* dst, const void* src, size_t bytes, void* stream) {
  QSFT_CHECK(bytes % 16 == 0 && aligned16(src) && aligned16(dst), "copy_words: 16-byte aligned whole words only");
  const int64_t words = int64_t(bytes / 16);
  if (words == 0) return;
  copy_words_kernel<<<grid_for(words), kThreads, 0, as_stream(stream)>>>(static_cast<const uint4*>(src), words,
                                                                         static_cast<uint4*>(dst));
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
