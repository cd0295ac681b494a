#include <algorithm>

#include "kernels/kernel_util_cuda.h"
#include "kernels/rmsnorm_cuda.h"

namespace qsft::cuda {
namespace {

constexpr int kRowThreads = 256;

// One block per row, W columns per thread step (16-byte vectors when H and every row stride are multiples of W and
// the pointers are aligned). Both passes of a kernel visit the same columns in the same threads, so a row written in
// place needs no barrier. Row r of a tensor starts at its NormRows' at(r, H) (packed rows or strided head views).
// The forward keeps its thread's first kCached steps of x in registers between the sum of squares and the scaling
// (a 7B row: 2 steps of 224 threads), so x is read from memory once; steps beyond (rows wider than kCached passes,
// e.g. scalar rows over 1024) are read again. Same sums in the same order as reading twice.
constexpr int kCached = 4;
template <int W, class T>
__global__ void __launch_bounds__(kRowThreads)
    rmsnorm_fwd_kernel(const T* x, NormRows xl, const T* w, int64_t H, float eps, T* y, NormRows yl, float* rstd) {
  __shared__ float scratch[32];
  const int64_t t = blockIdx.x, steps = H / W;  // W divides H (the launcher's condition for W > 1)
  const T* xr = x + xl.at(t, H);
  T* yr = y + yl.at(t, H);
  float a[kCached][W];
  float ss = 0.0f;
#pragma unroll
  for (int p = 0; p < kCached; ++p) {
    const int64_t j = (threadIdx.x + int64_t(p) * blockDim.x) * W;
    if (j < H) {
      load_n<W>(xr + j, a[p]);
#pragma unroll
      for (int k = 0; k < W; ++k) ss += a[p][k] * a[p][k];
    }
  }
  for (int64_t s = threadIdx.x + int64_t(kCached) * blockDim.x; s < steps; s += blockDim.x) {
    float v[W];
    load_n<W>(xr + s * W, v);
#pragma unroll
    for (int k = 0; k < W; ++k) ss += v[k] * v[k];
  }
  ss = block_sum(ss, scratch);
  const float r = 1.0f / sqrtf(ss / float(H) + eps);
  auto scale_store = [&](int64_t j, float(&v)[W]) {  // y = round(x rstd) w
    float g[W];
    load_n<W>(w + j, g);
#pragma unroll
    for (int k = 0; k < W; ++k) v[k] = round_to(v[k] * r, y) * g[k];
    store_n<W>(yr + j, v);
  };
#pragma unroll
  for (int p = 0; p < kCached; ++p) {
    const int64_t j = (threadIdx.x + int64_t(p) * blockDim.x) * W;
    if (j < H) scale_store(j, a[p]);
  }
  for (int64_t s = threadIdx.x + int64_t(kCached) * blockDim.x; s < steps; s += blockDim.x) {
    float v[W];
    load_n<W>(xr + s * W, v);
    scale_store(s * W, v);
  }
  if (threadIdx.x == 0) rstd[t] = r;
}

// dx (+)= r w dy - (r^3 / H) (sum_j dy_j w_j x_j) x. With dx = dy (in place) every thread reads its columns of dy
// before it writes them, and all reads of the dot precede block_sum's barrier.
template <int W, class T>
__global__ void __launch_bounds__(kRowThreads)
    rmsnorm_bwd_kernel(const T* dy, NormRows dyl, const T* x, NormRows xl, const T* w, const float* rstd, int64_t H,
                       T* dx, NormRows dxl, bool accumulate) {
  __shared__ float scratch[32];
  const int64_t t = blockIdx.x;
  const T *dyr = dy + dyl.at(t, H), *xr = x + xl.at(t, H);
  T* dxr = dx + dxl.at(t, H);
  float dot = 0.0f;
  block_stride_vec<W>(H, [&](auto width, int64_t j) {
    constexpr int N = decltype(width)::value;
    float d[N], g[N], a[N];
    load_n<N>(dyr + j, d);
    load_n<N>(w + j, g);
    load_n<N>(xr + j, a);
#pragma unroll
    for (int k = 0; k < N; ++k) dot += d[k] * g[k] * a[k];
  });
  dot = block_sum(dot, scratch);
  const float r = rstd[t];
  const float coef = r * r * r * dot / float(H);
  block_stride_vec<W>(H, [&](auto width, int64_t j) {
    constexpr int N = decltype(width)::value;
    float d[N], g[N], a[N], o[N] = {};
    load_n<N>(dyr + j, d);
    load_n<N>(w + j, g);
    load_n<N>(xr + j, a);
    if (accumulate) load_n<N>(dxr + j, o);
#pragma unroll
    for (int k = 0; k < N; ++k) o[k] = o[k] + r * g[k] * d[k] - coef * a[k];
    store_n<N>(dxr + j, o);
  });
}

// Threads for a row of `steps` thread steps: as few passes as 256 threads need, spread evenly (a multiple of 32),
// e.g. H = 3584 bf16: 448 vectors -> 224 threads x 2; H = 896: 112 -> 128 x 1.
unsigned row_threads(int64_t steps) {
  const int64_t passes = (steps + kRowThreads - 1) / kRowThreads;
  const int64_t per_pass = (steps + passes - 1) / passes;
  return unsigned(std::max<int64_t>(32, (per_pass + 31) / 32 * 32));
}

// Whether a tensor's rows allow 16-byte vectors of E: its pointer aligned and its token row stride a whole number of
// vectors (H itself is checked by launch_rows).
template <class E>
bool vec_rows(const void* p, NormRows l) {
  return aligned16(p) && l.ld % kVec<E> == 0;
}

// Calls launch(width, threads) with the widest access the row layout allows.
template <class E, class L>
void launch_rows(int64_t H, bool aligned, L&& launch) {
  const bool vec = aligned && H % kVec<E> == 0;
  launch_vec_or_scalar<kVec<E>>(vec, [&](auto w) { launch(w, row_threads(H / decltype(w)::value)); });
}

}  // namespace

void rmsnorm_fwd(DType dt, const void* x, NormRows xl, const void* w, int64_t R, int64_t H, float eps, void* y,
                 NormRows yl, float* rstd, void* stream) {
  if (R == 0) return;
  dispatch_float(dt, "rmsnorm_fwd", [&](auto tag) {
    using E = decltype(tag);
    const bool aligned = vec_rows<E>(x, xl) && aligned16(w) && vec_rows<E>(y, yl);
    launch_rows<E>(H, aligned, [&](auto width, unsigned threads) {
      rmsnorm_fwd_kernel<decltype(width)::value, E><<<unsigned(R), threads, 0, as_stream(stream)>>>(
          static_cast<const E*>(x), xl, static_cast<const E*>(w), H, eps, static_cast<E*>(y), yl, rstd);
    });
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

void rmsnorm_bwd(DType dt, const void* dy, NormRows dyl, const void* x, NormRows xl, const void* w, const float* rstd,
                 int64_t R, int64_t H, void* dx, NormRows dxl, bool accumulate, void* stream) {
  if (R == 0) return;
  dispatch_float(dt, "rmsnorm_bwd", [&](auto tag) {
    using E = decltype(tag);
    const bool aligned = vec_rows<E>(dy, dyl) && vec_rows<E>(x, xl) && aligned16(w) && vec_rows<E>(dx, dxl);
    launch_rows<E>(H, aligned, [&](auto width, unsigned threads) {
      rmsnorm_bwd_kernel<decltype(width)::value, E><<<unsigned(R), threads, 0, as_stream(stream)>>>(
          static_cast<const E*>(dy), dyl, static_cast<const E*>(x), xl, static_cast<const E*>(w), rstd, H,
          static_cast<E*>(dx), dxl, accumulate);
    });
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
