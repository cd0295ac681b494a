// Device-side helpers every kernels/*.cu shares: checked CUDA calls (file:line), bf16/fp32 element access with
// fp32 arithmetic, dtype dispatch, launch geometry and warp/block reductions.
// CUDA code: include from .cu files only (the g++-facing declarations are in the other kernels/*_cuda.h).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "engine/base/tensor.h"

#define QSFT_CUDA_CHECK(call) ::qsft::cuda::check_cuda((call), #call, __FILE__, __LINE__)
// After every launch: a bad configuration shows here, at the launching line and function. Kernels run
// asynchronously, so a fault inside one surfaces at a later call; with QSFT_SYNC_LAUNCHES=1 or
// CUDA_LAUNCH_BLOCKING=1 in the environment every launch is also synchronised, so the fault is named here.
#define QSFT_CUDA_CHECK_LAUNCH() ::qsft::cuda::check_launch(__func__, __FILE__, __LINE__)

namespace qsft::cuda {

using bf16 = __nv_bfloat16;

inline void check_cuda(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + what + ": " + cudaGetErrorName(e) +
                             " (" + cudaGetErrorString(e) + ")");
}

bool sync_launches();  // kernels/runtime_cuda.h

inline void check_launch(const char* launcher, const char* file, int line) {
  const std::string what = std::string("kernel launch in ") + launcher + "()";
  check_cuda(cudaGetLastError(), what.c_str(), file, line);
  if (sync_launches()) check_cuda(cudaDeviceSynchronize(), (what + ", synchronised").c_str(), file, line);
}

inline cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

// ---- elements: storage type T (float or bf16), arithmetic in fp32 ----
__device__ __forceinline__ float load(const float* p) { return *p; }
// One element of dropout (the dropout kernel and the fused LoRA ones share it): when kept (rng::kept16), x / (1 - p)
// as x * keep_scale; _rn: no fma contraction with what follows, so the CPU op's bits.
__device__ __forceinline__ float dropout_value(float x, bool keep, float keep_scale) {
  return keep ? __fmul_rn(x, keep_scale) : 0.0f;
}
__device__ __forceinline__ float load(const bf16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(bf16* p, float v) { *p = __float2bfloat16_rn(v); }
// v rounded to the storage precision of T (what a store then load gives).
__device__ __forceinline__ float round_to(float v, const float*) { return v; }
__device__ __forceinline__ float round_to(float v, const bf16*) { return __bfloat162float(__float2bfloat16_rn(v)); }

// Calls f(T{}) with T = float for F32 and bf16 for BF16; other dtypes are an error naming `what`.
template <class F>
void dispatch_float(DType dt, const char* what, F&& f) {
  if (dt == DType::F32) {
    f(float{});
  } else if (dt == DType::BF16) {
    f(bf16{});
  } else {
    throw std::logic_error(std::string(what) + ": dtype " + dtype_name(dt) + " is not F32 or BF16");
  }
}

// ---- launch geometry ----
constexpr int kThreads = 256;  // default block size of elementwise kernels
// Blocks for a grid-stride loop over n items: enough to fill the GPU, capped (the loop covers the rest).
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return unsigned(blocks < 1 ? 1 : (blocks > 65536 ? 65536 : blocks));
}
// Streaming multiprocessors of the current device, read once (a process drives one device).
inline int sm_count() {
  static const int count = [] {
    int dev = 0, n = 0;
    QSFT_CUDA_CHECK(cudaGetDevice(&dev));
    QSFT_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    return n;
  }();
  return count;
}
#define QSFT_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// ---- 16-byte vector access: memory-bound kernels move N consecutive elements per thread step ----
// kVec<T> elements fill 16 bytes (8 bf16, 4 fp32). load_n/store_n move N elements at p: as 16-byte words when
// N * sizeof(T) is a multiple of 16 (p must then be 16-byte aligned), else one element at a time (the scalar tail).
template <class T>
constexpr int kVec = int(16 / sizeof(T));
template <int N, class T>
__device__ __forceinline__ void load_n(const T* p, float (&out)[N]) {
  if constexpr (N * sizeof(T) % 16 == 0) {
#pragma unroll
    for (int c = 0; c < N / kVec<T>; ++c) {
      const uint4 raw = reinterpret_cast<const uint4*>(p)[c];
      const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int k = 0; k < kVec<T>; ++k) out[c * kVec<T> + k] = load(e + k);
    }
  } else {
#pragma unroll
    for (int k = 0; k < N; ++k) out[k] = load(p + k);
  }
}
template <int N, class T>
__device__ __forceinline__ void store_n(T* p, const float (&in)[N]) {
  if constexpr (N * sizeof(T) % 16 == 0) {
#pragma unroll
    for (int c = 0; c < N / kVec<T>; ++c) {
      uint4 raw;
      T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
      for (int k = 0; k < kVec<T>; ++k) store(e + k, in[c * kVec<T> + k]);
      reinterpret_cast<uint4*>(p)[c] = raw;
    }
  } else {
#pragma unroll
    for (int k = 0; k < N; ++k) store(p + k, in[k]);
  }
}
// The kVec<T> elements of a 16-byte word already in registers, as fp32 (bf16 -> fp32 is exact: the bits shifted
// up 16; element 0 is the low half of the first 32-bit lane, as in memory).
template <class T>
__device__ __forceinline__ void unpack_word(const uint4& raw, float (&out)[kVec<T>]) {
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if constexpr (std::is_same_v<T, float>) {
      out[k] = __uint_as_float(w[k]);
    } else {
      static_assert(std::is_same_v<T, bf16>, "unpack_word: float or bf16");
      out[2 * k] = __uint_as_float(w[k] << 16);
      out[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
    }
  }
}
// The inverse: kVec<T> fp32 values rounded to T (to nearest even) and packed into one 16-byte word.
template <class T>
__device__ __forceinline__ uint4 pack_word(const float (&in)[kVec<T>]) {
  uint32_t w[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if constexpr (std::is_same_v<T, float>) {
      w[k] = __float_as_uint(in[k]);
    } else {
      const __nv_bfloat162 pair = __floats2bfloat162_rn(in[2 * k], in[2 * k + 1]);  // .x = the lower address
      w[k] = *reinterpret_cast<const uint32_t*>(&pair);
    }
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}
// Width tag: the number of elements a step of a vectorised loop handles.
template <int N>
using Width = std::integral_constant<int, N>;
// Grid-stride over n elements in steps of W: f(Width<W>{}, i) for every i = 0, W, 2W, ... with i + W <= n, then
// f(Width<1>{}, i) for each of the last n % W elements.
template <int W, class F>
__device__ __forceinline__ void grid_stride_vec(int64_t n, F&& f) {
  const int64_t body = n / W * W;
  QSFT_GRID_STRIDE(g, n / W) f(Width<W>{}, g * W);
  if constexpr (W > 1) QSFT_GRID_STRIDE(i, n - body) f(Width<1>{}, body + i);
}
// y[i] = f(x[i], i) over n elements in fp32 (one rounding at the store), W per step; x and y may alias.
template <int W, class T, class F>
__device__ __forceinline__ void map_vec(const T* x, T* y, int64_t n, F&& f) {
  grid_stride_vec<W>(n, [&](auto w, int64_t i) {
    constexpr int N = decltype(w)::value;
    float a[N];
    load_n<N>(x + i, a);
#pragma unroll
    for (int k = 0; k < N; ++k) a[k] = f(a[k], i + k);
    store_n<N>(y + i, a);
  });
}
// The same over one block's threads (a row kernel): f(Width<W>{}, j) for j = W * threadIdx.x, stepping by
// W * blockDim.x while a whole step fits in n, then f(Width<1>{}, j) for the last n % W elements.
template <int W, class F>
__device__ __forceinline__ void block_stride_vec(int64_t n, F&& f) {
  const int64_t body = n / W * W;
#pragma unroll 4
  for (int64_t j = int64_t(threadIdx.x) * W; j < body; j += int64_t(blockDim.x) * W) f(Width<W>{}, j);
  if constexpr (W > 1)
    for (int64_t j = body + threadIdx.x; j < n; j += blockDim.x) f(Width<1>{}, j);
}
// The same over n elements (a multiple of W) of x, with In loads per thread issued before the first is used (a
// strided loop issues one, so only one 16-byte word per thread is in flight): f(l, j) with l = x[j .. j + W) as
// fp32, for j = W * threadIdx.x, stepping by W * blockDim.x. f may store to x[j .. j + W).
template <int W, int In, class T, class F>
__device__ __forceinline__ void block_stride_batched(const T* x, int64_t n, F&& f) {
  const int64_t steps = n / W, stride = blockDim.x;
  for (int64_t s0 = threadIdx.x; s0 < steps; s0 += In * stride) {
    float l[In][W];
#pragma unroll
    for (int u = 0; u < In; ++u)
      if (s0 + u * stride < steps) load_n<W>(x + (s0 + u * stride) * W, l[u]);
#pragma unroll
    for (int u = 0; u < In; ++u)
      if (s0 + u * stride < steps) f(l[u], (s0 + u * stride) * W);
  }
}
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
// Calls launch(Width<W>{}) when `vec` (every pointer 16-byte aligned, rows a multiple of W elements), else
// launch(Width<1>{}): the kernel's element-at-a-time instance.
template <int W, class L>
void launch_vec_or_scalar(bool vec, L&& launch) {
  if (vec)
    launch(Width<W>{});
  else
    launch(Width<1>{});
}

// ---- reductions (fixed shapes: the result does not depend on timing) ----
template <class V>
__device__ __forceinline__ V warp_sum(V v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the result. `scratch` holds 32 V.
template <class V>
__device__ V block_sum(V v, V* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : V(0);
  return warp_sum(v);
}
__device__ inline float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : -INFINITY;
  return warp_max(v);
}

// ---- packed sequences ----
// The sequence s with cu[s] <= t < cu[s + 1] (cu [num_seqs + 1], non-decreasing, cu[num_seqs] > t).
__device__ __forceinline__ int sequence_of(const int32_t* cu, int num_seqs, int64_t t) {
  int lo = 0, hi = num_seqs - 1;  // invariant: the answer is in [lo, hi]
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (cu[mid] <= t)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

}  // namespace qsft::cuda
