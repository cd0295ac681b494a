// Variant 01 of the cross-entropy row pass: the production kernel before the online pass, unchanged. Three passes
// over each row of logits (argmax, then sum exp(l - max), then the gradient), one element per thread step, 1024
// threads per row. Kept only so that bench/gpu_ce_bench.cpp measures what the online 16-byte pass gains.
#include "kernels/dev/cross_entropy/variants.h"
#include "kernels/kernel_util_cuda.h"

namespace qsft::dev {
namespace {

using cuda::bf16;
using cuda::load;
using cuda::store;
constexpr int kRowThreads = 1024;

// (value, index) of the first maximum: ties go to the smaller index (torch.argmax).
struct ArgMax {
  float v;
  int64_t i;
};
__device__ __forceinline__ ArgMax better(ArgMax a, ArgMax b) {
  return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
}
__device__ ArgMax block_argmax(ArgMax m, float* vals, int64_t* idxs) {
  for (int o = 16; o > 0; o >>= 1)
    m = better(m, ArgMax{__shfl_xor_sync(0xffffffffu, m.v, o), __shfl_xor_sync(0xffffffffu, m.i, o)});
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) {
    vals[warp] = m.v;
    idxs[warp] = m.i;
  }
  __syncthreads();
  m = lane < int(blockDim.x >> 5) ? ArgMax{vals[lane], idxs[lane]} : ArgMax{-INFINITY, INT64_MAX};
  for (int o = 16; o > 0; o >>= 1)
    m = better(m, ArgMax{__shfl_xor_sync(0xffffffffu, m.v, o), __shfl_xor_sync(0xffffffffu, m.i, o)});
  return m;
}

template <class T>
__global__ void __launch_bounds__(kRowThreads)
    softmax_ce_kernel(T* logits, int64_t V, const int32_t* targets, const int32_t* idx, float grad_scale,
                      bool want_grad, float* row_loss, int32_t* row_correct) {
  __shared__ float fscratch[32];
  __shared__ int64_t iscratch[32];
  T* row = logits + int64_t(blockIdx.x) * V;
  const int32_t target = targets[idx[blockIdx.x]];
  ArgMax m{-INFINITY, INT64_MAX};
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) m = better(m, ArgMax{load(row + j), j});
  m = block_argmax(m, fscratch, iscratch);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) sum += expf(load(row + j) - m.v);
  sum = cuda::block_sum(sum, fscratch);
  const float target_logit = load(row + target);
  __syncthreads();  // every thread has read row[target] before the gradient overwrites it
  if (threadIdx.x == 0) {
    row_loss[blockIdx.x] = m.v + logf(sum) - target_logit;
    row_correct[blockIdx.x] = m.i == target;
  }
  if (!want_grad) return;
  const float scale = grad_scale / sum;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x)
    store(row + j, expf(load(row + j) - m.v) * scale - (j == target ? grad_scale : 0.0f));
}

}  // namespace

void softmax_ce_rows_dev01(const cuda::SoftmaxCeRows& a, void* stream) {
  if (a.rows == 0) return;
  cuda::dispatch_float(a.dt, "softmax_ce_rows_dev01", [&](auto tag) {
    using E = decltype(tag);
    softmax_ce_kernel<E><<<unsigned(a.rows), kRowThreads, 0, cuda::as_stream(stream)>>>(
        static_cast<E*>(a.logits), a.V, a.targets, a.idx, a.grad_scale, a.want_grad, a.row_loss, a.row_correct);
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::dev
