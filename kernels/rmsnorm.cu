#include <algorithm>

#include "kernels/kernel_util_cuda.h"
#include "kernels/rmsnorm_cuda.h"

namespace qsft::cuda {
namespace {

constexpr int kRowThreads = 256;

// The math per element, shared by the block-per-row and warp-per-row kernels:
//   forward  y = round(x rstd) w        (transformers' order: the normalised row rounded to y's dtype first)
//   backward dx (+)= r w dy - coef x    (coef = r^3 / H sum_j dy_j w_j x_j)
template <int N, class T>
__device__ __forceinline__ void scale_by_weight(float (&v)[N], float r, const float (&g)[N], const T* y) {
#pragma unroll
  for (int k = 0; k < N; ++k) v[k] = round_to(v[k] * r, y) * g[k];
}
template <int N>
__device__ __forceinline__ void norm_input_grad(float (&o)[N], const float (&d)[N], const float (&g)[N],
                                                const float (&a)[N], float r, float coef) {
#pragma unroll
  for (int k = 0; k < N; ++k) o[k] = o[k] + r * g[k] * d[k] - coef * a[k];
}

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
  auto scale_store = [&](int64_t j, float(&v)[W]) {
    float g[W];
    load_n<W>(w + j, g);
    scale_by_weight(v, r, g, y);
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
    norm_input_grad(o, d, g, a, r, coef);
    store_n<N>(dxr + j, o);
  });
}

// Rows of at most 32 x kWarpMaxSteps 16-byte words (bf16 H <= 4096, fp32 H <= 2048): one warp per row, kWarpRows
// rows a block, S words per lane (word j of the row: lane j % 32, slot j / 32), kept in registers as loaded between
// the reduction and the writes; warp shuffles only, so no barrier stops a row's loads, and a block carries 8 rows
// instead of one. Why: the block-per-row kernels above reached 50 % (H = 896) and 61 % (H = 3584) of the copy
// bandwidth in the forward, 79 % in the backward at H = 896 (H200, bench/gpu-runs/2026-11-30-45ffbc3): one short
// row per block, its loads, two barriers and its stores in sequence.
constexpr int kWarpRows = 8;
constexpr int kWarpMaxSteps = 16;    // forward: the row's x, 16 x 4 registers at most
constexpr int kWarpMaxStepsBwd = 8;  // backward: dy and x, 2 x 8 x 4 registers
__device__ __forceinline__ bool in_row(int s, int lane, int steps) { return lane + 32 * s < steps; }

template <int S, class T>
__global__ void __launch_bounds__(32 * kWarpRows)
    rmsnorm_fwd_warp_kernel(const T* x, NormRows xl, const T* w, int64_t R, int64_t H, float eps, T* y, NormRows yl,
                            float* rstd) {
  constexpr int W = kVec<T>;
  const int lane = threadIdx.x & 31, steps = int(H / W);
  const int64_t t = int64_t(blockIdx.x) * kWarpRows + threadIdx.x / 32;
  if (t >= R) return;  // the whole warp
  const uint4* xr = reinterpret_cast<const uint4*>(x + xl.at(t, H));
  uint4* yr = reinterpret_cast<uint4*>(y + yl.at(t, H));
  const uint4* wv = reinterpret_cast<const uint4*>(w);
  uint4 raw[S];
#pragma unroll
  for (int s = 0; s < S; ++s)
    if (in_row(s, lane, steps)) raw[s] = xr[lane + 32 * s];
  float ss = 0.0f;
#pragma unroll
  for (int s = 0; s < S; ++s) {
    if (!in_row(s, lane, steps)) continue;
    float v[W];
    unpack_word<T>(raw[s], v);
#pragma unroll
    for (int k = 0; k < W; ++k) ss += v[k] * v[k];
  }
  const float r = 1.0f / sqrtf(warp_sum(ss) / float(H) + eps);
#pragma unroll
  for (int s = 0; s < S; ++s) {
    if (!in_row(s, lane, steps)) continue;
    const int j = lane + 32 * s;
    float v[W], g[W];
    unpack_word<T>(raw[s], v);
    load_n<W>(reinterpret_cast<const T*>(wv + j), g);
    scale_by_weight(v, r, g, y);
    store_n<W>(reinterpret_cast<T*>(yr + j), v);
  }
  if (lane == 0) rstd[t] = r;
}

// The backward's formula (rmsnorm_bwd_kernel) by one warp per row, dy and x held in registers between the dot and
// the writes. dx may be dy: every lane reads its words of dy before it writes them.
template <int S, class T>
__global__ void __launch_bounds__(32 * kWarpRows)
    rmsnorm_bwd_warp_kernel(const T* dy, NormRows dyl, const T* x, NormRows xl, const T* w, const float* rstd,
                            int64_t R, int64_t H, T* dx, NormRows dxl, bool accumulate) {
  constexpr int W = kVec<T>;
  const int lane = threadIdx.x & 31, steps = int(H / W);
  const int64_t t = int64_t(blockIdx.x) * kWarpRows + threadIdx.x / 32;
  if (t >= R) return;  // the whole warp
  const uint4 *dyr = reinterpret_cast<const uint4*>(dy + dyl.at(t, H)),
              *xr = reinterpret_cast<const uint4*>(x + xl.at(t, H));
  uint4* dxr = reinterpret_cast<uint4*>(dx + dxl.at(t, H));
  const uint4* wv = reinterpret_cast<const uint4*>(w);
  uint4 dy_raw[S], x_raw[S];
#pragma unroll
  for (int s = 0; s < S; ++s)
    if (in_row(s, lane, steps)) {
      dy_raw[s] = dyr[lane + 32 * s];
      x_raw[s] = xr[lane + 32 * s];
    }
  float dot = 0.0f;
#pragma unroll
  for (int s = 0; s < S; ++s) {
    if (!in_row(s, lane, steps)) continue;
    float d[W], g[W], a[W];
    unpack_word<T>(dy_raw[s], d);
    load_n<W>(reinterpret_cast<const T*>(wv + lane + 32 * s), g);
    unpack_word<T>(x_raw[s], a);
#pragma unroll
    for (int k = 0; k < W; ++k) dot += d[k] * g[k] * a[k];
  }
  const float r = rstd[t];
  const float coef = r * r * r * warp_sum(dot) / float(H);
#pragma unroll
  for (int s = 0; s < S; ++s) {
    if (!in_row(s, lane, steps)) continue;
    const int j = lane + 32 * s;
    float d[W], g[W], a[W], o[W] = {};
    unpack_word<T>(dy_raw[s], d);
    load_n<W>(reinterpret_cast<const T*>(wv + j), g);
    unpack_word<T>(x_raw[s], a);
    if (accumulate) load_n<W>(reinterpret_cast<const T*>(dxr + j), o);
    norm_input_grad(o, d, g, a, r, coef);
    store_n<W>(reinterpret_cast<T*>(dxr + j), o);
  }
}

// Calls launch(Width<S>{}, blocks) for the warp kernels when rows allow 16-byte words and fit 32 x kMaxSteps of
// them (S: the words per lane, rounded up to 1, 2, 4, 8 or 16); returns false otherwise (the block kernels run).
template <class E, int kMaxSteps, class L>
bool launch_warp_rows(int64_t R, int64_t H, bool aligned, L&& launch) {
  if (!aligned || H % kVec<E> != 0) return false;
  const int64_t per_lane = (H / kVec<E> + 31) / 32;
  if (per_lane > kMaxSteps) return false;
  const unsigned blocks = unsigned((R + kWarpRows - 1) / kWarpRows);
  if (per_lane <= 1)
    launch(Width<1>{}, blocks);
  else if (per_lane <= 2)
    launch(Width<2>{}, blocks);
  else if (per_lane <= 4)
    launch(Width<4>{}, blocks);
  else if (per_lane <= 8 || kMaxSteps <= 8)
    launch(Width<8>{}, blocks);
  else if constexpr (kMaxSteps >= 16)
    launch(Width<16>{}, blocks);
  return true;
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
    const bool warp_rows = launch_warp_rows<E, kWarpMaxSteps>(R, H, aligned, [&](auto per_lane, unsigned blocks) {
      rmsnorm_fwd_warp_kernel<decltype(per_lane)::value, E><<<blocks, 32 * kWarpRows, 0, as_stream(stream)>>>(
          static_cast<const E*>(x), xl, static_cast<const E*>(w), R, H, eps, static_cast<E*>(y), yl, rstd);
    });
    if (!warp_rows)
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
    const bool warp_rows = launch_warp_rows<E, kWarpMaxStepsBwd>(R, H, aligned, [&](auto per_lane, unsigned blocks) {
      rmsnorm_bwd_warp_kernel<decltype(per_lane)::value, E><<<blocks, 32 * kWarpRows, 0, as_stream(stream)>>>(
          static_cast<const E*>(dy), dyl, static_cast<const E*>(x), xl, static_cast<const E*>(w), rstd, R, H,
          static_cast<E*>(dx), dxl, accumulate);
    });
    if (!warp_rows)
      launch_rows<E>(H, aligned, [&](auto width, unsigned threads) {
        rmsnorm_bwd_kernel<decltype(width)::value, E><<<unsigned(R), threads, 0, as_stream(stream)>>>(
            static_cast<const E*>(dy), dyl, static_cast<const E*>(x), xl, static_cast<const E*>(w), rstd, H,
            static_cast<E*>(dx), dxl, accumulate);
      });
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
