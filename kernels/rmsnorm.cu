#include "kernels/kernel_util_cuda.h"
#include "kernels/rmsnorm_cuda.h"

namespace qsft::cuda {
namespace {

constexpr int kRowThreads = 256;

// Normalises row x [H] into y with the row's sum of squares already known; returns rstd.
// Each thread touches the columns j = threadIdx.x + k * blockDim.x, the same ones it wrote before (no barrier).
template <class T>
__device__ float normalize_row(const T* x, const T* w, int64_t H, float eps, float sum_sq, T* y) {
  const float rstd = 1.0f / sqrtf(sum_sq / float(H) + eps);
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) store(y + j, round_to(load(x + j) * rstd, y) * load(w + j));
  return rstd;
}

template <class T>
__global__ void __launch_bounds__(kRowThreads)
    rmsnorm_fwd_kernel(const T* x, const T* w, int64_t H, float eps, T* y, float* rstd) {
  __shared__ float scratch[32];
  const int64_t t = blockIdx.x;
  const T* xr = x + t * H;
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) ss += load(xr + j) * load(xr + j);
  ss = block_sum(ss, scratch);
  const float r = normalize_row(xr, w, H, eps, ss, y + t * H);
  if (threadIdx.x == 0) rstd[t] = r;
}

template <class T>
__global__ void __launch_bounds__(kRowThreads)
    rmsnorm_bwd_kernel(const T* dy, const T* x, const T* w, const float* rstd, int64_t H, T* dx) {
  __shared__ float scratch[32];
  const int64_t t = blockIdx.x;
  const T *dyr = dy + t * H, *xr = x + t * H;
  float dot = 0.0f;  // sum_j dy_j w_j x_j
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) dot += load(dyr + j) * load(w + j) * load(xr + j);
  dot = block_sum(dot, scratch);
  const float r = rstd[t];
  const float coef = r * r * r * dot / float(H);
  T* dxr = dx + t * H;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x)
    store(dxr + j, load(dxr + j) + r * load(w + j) * load(dyr + j) - coef * load(xr + j));
}

}  // namespace

void rmsnorm_fwd(DType dt, const void* x, const void* w, int64_t T, int64_t H, float eps, void* y, float* rstd,
                 void* stream) {
  if (T == 0) return;
  dispatch_float(dt, "rmsnorm_fwd", [&](auto tag) {
    using E = decltype(tag);
    rmsnorm_fwd_kernel<E><<<unsigned(T), kRowThreads, 0, as_stream(stream)>>>(
        static_cast<const E*>(x), static_cast<const E*>(w), H, eps, static_cast<E*>(y), rstd);
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

void rmsnorm_bwd(DType dt, const void* dy, const void* x, const void* w, const float* rstd, int64_t T, int64_t H,
                 void* dx, void* stream) {
  if (T == 0) return;
  dispatch_float(dt, "rmsnorm_bwd", [&](auto tag) {
    using E = decltype(tag);
    rmsnorm_bwd_kernel<E><<<unsigned(T), kRowThreads, 0, as_stream(stream)>>>(
        static_cast<const E*>(dy), static_cast<const E*>(x), static_cast<const E*>(w), rstd, H, static_cast<E*>(dx));
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
