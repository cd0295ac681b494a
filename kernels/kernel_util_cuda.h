// Device-side helpers every kernels/*.cu shares: checked CUDA calls (file:line), bf16/fp32 element access with
// fp32 arithmetic, dtype dispatch, launch geometry and warp/block reductions.
// CUDA code: include from .cu files only (the g++-facing declarations are in the other kernels/*_cuda.h).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

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
#define QSFT_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

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
