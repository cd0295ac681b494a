#include "kernels/argmax_cuda.h"
#include "kernels/kernel_util_cuda.h"

namespace qsft::cuda {
namespace {

constexpr int kArgmaxThreads = 1024;

// (best, at) becomes (v, i) when i is a candidate (>= 0) that beats it: larger, or equal and earlier. at < 0: none.
__device__ __forceinline__ void keep_better(float& best, int32_t& at, float v, int32_t i) {
  if (i >= 0 && (at < 0 || v > best || (v == best && i < at))) {
    best = v;
    at = i;
  }
}

// Block r: thread t scans i = t, t + blockDim, ... (the first maximum of its own, indices ascending), then the
// threads' candidates are reduced in warps and across warps; the order does not change the result.
__global__ void argmax_rows_kernel(const float* x, int64_t V, int32_t* out) {
  __shared__ float warp_best[kArgmaxThreads / 32];
  __shared__ int32_t warp_at[kArgmaxThreads / 32];
  const float* row = x + int64_t(blockIdx.x) * V;
  float best = 0.0f;
  int32_t at = -1;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) keep_better(best, at, row[i], int32_t(i));
  for (int o = 16; o > 0; o >>= 1)
    keep_better(best, at, __shfl_xor_sync(0xffffffffu, best, o), __shfl_xor_sync(0xffffffffu, at, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    warp_best[warp] = best;
    warp_at[warp] = at;
  }
  __syncthreads();
  if (warp > 0) return;
  best = 0.0f;
  at = -1;
  if (lane < int(blockDim.x >> 5)) keep_better(best, at, warp_best[lane], warp_at[lane]);
  for (int o = 16; o > 0; o >>= 1)
    keep_better(best, at, __shfl_xor_sync(0xffffffffu, best, o), __shfl_xor_sync(0xffffffffu, at, o));
  if (lane == 0) out[blockIdx.x] = at;
}

}  // namespace

void argmax_rows(const float* x, int64_t R, int64_t V, int32_t* out, void* stream) {
  if (R == 0) return;
  argmax_rows_kernel<<<unsigned(R), kArgmaxThreads, 0, as_stream(stream)>>>(x, V, out);
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
