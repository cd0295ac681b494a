// The cross-entropy row pass's pieces (kernels/cross_entropy.cu and its kernels/dev/cross_entropy variants share
// them): online softmax statistics of part of a row, their merge, and the gradient of one step of elements.
// CUDA code: include from .cu files only.
#pragma once
#include <cstdint>

#include "kernels/kernel_util_cuda.h"

namespace qsft::cuda {

// Online softmax statistics of some elements of a row: m = their maximum, i = its first index, s = sum exp(l - m).
// Merging two keeps the larger maximum (the smaller index on ties, as torch.argmax) and rescales the other sum.
// A -inf logit adds 0 (even while m is -inf); a NaN logit makes s NaN, so the loss is NaN and the trainer stops.
struct OnlineSoftmax {
  float m = -INFINITY;
  int64_t i = INT64_MAX;
  float s = 0.0f;
};
__device__ __forceinline__ OnlineSoftmax merge(OnlineSoftmax a, OnlineSoftmax b) {
  if (b.m > a.m || (b.m == a.m && b.i < a.i)) {
    const OnlineSoftmax t = a;
    a = b;
    b = t;
  }
  if (b.s != 0.0f) a.s += b.s * expf(b.m - a.m);  // s = 0: no elements or only -inf ones (and no exp(-inf + inf))
  return a;
}
// The merge over the block, in a fixed order; every thread gets it. `scratch` holds blockDim.x / 32 entries.
__device__ inline OnlineSoftmax block_merge(OnlineSoftmax v, OnlineSoftmax* scratch) {
  auto warp_merge = [](OnlineSoftmax x) {
    for (int o = 16; o > 0; o >>= 1)
      x = merge(x, OnlineSoftmax{__shfl_xor_sync(0xffffffffu, x.m, o), __shfl_xor_sync(0xffffffffu, x.i, o),
                                 __shfl_xor_sync(0xffffffffu, x.s, o)});
    return x;
  };
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_merge(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  return warp_merge(lane < int(blockDim.x >> 5) ? scratch[lane] : OnlineSoftmax{});
}

// Adds elements l[0 .. N) at row indices j, j + 1, ... to a thread's statistics. A thread's steps come in
// increasing j, so a tie keeps the earlier index.
template <int N>
__device__ __forceinline__ void online_add(OnlineSoftmax& st, const float (&l)[N], int64_t j) {
  float v_max = l[0];  // the step's first maximum (constant indices only: l stays in registers)
  int k_max = 0;
#pragma unroll
  for (int k = 1; k < N; ++k)
    if (l[k] > v_max) {
      v_max = l[k];
      k_max = k;
    }
  if (v_max > st.m) {
    st.s *= expf(st.m - v_max);
    st.m = v_max;
    st.i = j + k_max;
  }
#pragma unroll
  for (int k = 0; k < N; ++k) st.s += l[k] == -INFINITY ? 0.0f : expf(l[k] - st.m);
}

// The loss gradient of logits l[0 .. N) at row indices j, j + 1, ..., in place, with the row's statistics st and
// scale = grad_scale / st.s:  dl = grad_scale (exp(l - max) / sum - [index = target]).
template <int N>
__device__ __forceinline__ void softmax_ce_grad(float (&l)[N], const OnlineSoftmax& st, float scale, float grad_scale,
                                                int64_t j, int64_t target) {
#pragma unroll
  for (int k = 0; k < N; ++k) l[k] = expf(l[k] - st.m) * scale - (j + k == target ? grad_scale : 0.0f);
}

}  // namespace qsft::cuda
