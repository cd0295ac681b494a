#include "kernels/elementwise_cuda.h"
#include "kernels/kernel_util_cuda.h"
#include "kernels/rng.h"

namespace qsft::cuda {
namespace {

template <class T>
__global__ void add_kernel(T* y, const T* x, int64_t n) {
  QSFT_GRID_STRIDE(i, n) store(y + i, load(y + i) + load(x + i));
}

template <class T>
__global__ void scale_kernel(T* y, float s, int64_t n) {
  QSFT_GRID_STRIDE(i, n) store(y + i, load(y + i) * s);
}

template <class T>
__global__ void dropout_kernel(const T* x, int64_t n, float p, uint64_t seed, T* y) {
  const float keep_scale = 1.0f / (1.0f - p);
  QSFT_GRID_STRIDE(i, n) {
    const bool keep = p == 0.0f || rng::uniform(seed, uint64_t(i)) >= p;
    store(y + i, keep ? load(x + i) * keep_scale : 0.0f);
  }
}

__global__ void cast_kernel(const float* src, int64_t rows, int64_t cols, int64_t ld, bf16* dst) {
  QSFT_GRID_STRIDE(i, rows * cols) dst[i] = __float2bfloat16_rn(src[(i / cols) * ld + i % cols]);
}

}  // namespace

void add_inplace(DType dt, void* y, const void* x, int64_t n, void* stream) {
  if (n == 0) return;
  dispatch_float(dt, "add_inplace", [&](auto tag) {
    using T = decltype(tag);
    add_kernel<T><<<grid_for(n), kThreads, 0, as_stream(stream)>>>(static_cast<T*>(y), static_cast<const T*>(x), n);
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

void scale_inplace(DType dt, void* y, float s, int64_t n, void* stream) {
  if (n == 0) return;
  dispatch_float(dt, "scale_inplace", [&](auto tag) {
    using T = decltype(tag);
    scale_kernel<T><<<grid_for(n), kThreads, 0, as_stream(stream)>>>(static_cast<T*>(y), s, n);
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

void dropout(DType dt, const void* x, int64_t n, float p, uint64_t seed, void* y, void* stream) {
  if (n == 0) return;
  dispatch_float(dt, "dropout", [&](auto tag) {
    using T = decltype(tag);
    dropout_kernel<T>
        <<<grid_for(n), kThreads, 0, as_stream(stream)>>>(static_cast<const T*>(x), n, p, seed, static_cast<T*>(y));
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

void cast_f32_to_bf16_2d(const float* src, int64_t rows, int64_t cols, int64_t ld, void* dst, void* stream) {
  if (rows * cols == 0) return;
  cast_kernel<<<grid_for(rows * cols), kThreads, 0, as_stream(stream)>>>(src, rows, cols, ld, static_cast<bf16*>(dst));
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
