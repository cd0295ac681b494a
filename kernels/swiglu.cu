#include "kernels/kernel_util_cuda.h"
#include "kernels/swiglu_cuda.h"

namespace qsft::cuda {
namespace {

// Grid-stride over the T x I outputs, W consecutive i per step (16-byte vectors when I is a multiple of W and the
// pointers are aligned, so a step never leaves its row): reads gate_up[t, i..] and gate_up[t, I + i..].
template <int W, class T>
__global__ void swiglu_fwd_kernel(const T* gate_up, int64_t T_tokens, int64_t I, T* out) {
  grid_stride_vec<W>(T_tokens * I, [&](auto w, int64_t idx) {
    constexpr int N = decltype(w)::value;
    const int64_t t = idx / I, i = idx % I;
    float g[N], up[N];
    load_n<N>(gate_up + t * 2 * I + i, g);
    load_n<N>(gate_up + t * 2 * I + I + i, up);
#pragma unroll
    for (int k = 0; k < N; ++k) g[k] = g[k] / (1.0f + expf(-g[k])) * up[k];
    store_n<N>(out + idx, g);
  });
}

template <int W, class T>
__global__ void swiglu_bwd_kernel(const T* dout, const T* gate_up, int64_t T_tokens, int64_t I, T* dgate_up) {
  grid_stride_vec<W>(T_tokens * I, [&](auto w, int64_t idx) {
    constexpr int N = decltype(w)::value;
    const int64_t t = idx / I, i = idx % I;
    float g[N], up[N], dy[N];
    load_n<N>(gate_up + t * 2 * I + i, g);
    load_n<N>(gate_up + t * 2 * I + I + i, up);
    load_n<N>(dout + idx, dy);
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const float sig = 1.0f / (1.0f + expf(-g[k]));
      const float dg = dy[k] * up[k] * sig * (1.0f + g[k] * (1.0f - sig)), dup = dy[k] * g[k] * sig;
      g[k] = dg;
      up[k] = dup;
    }
    store_n<N>(dgate_up + t * 2 * I + i, g);
    store_n<N>(dgate_up + t * 2 * I + I + i, up);
  });
}

template <class E>
bool vectorizable(int64_t I, const void* a, const void* b) {
  return I % kVec<E> == 0 && aligned16(a) && aligned16(b);
}

}  // namespace

void swiglu_fwd(DType dt, const void* gate_up, int64_t T, int64_t I, void* out, void* stream) {
  if (T * I == 0) return;
  dispatch_float(dt, "swiglu_fwd", [&](auto tag) {
    using E = decltype(tag);
    launch_vec_or_scalar<kVec<E>>(vectorizable<E>(I, gate_up, out), [&](auto w) {
      constexpr int W = decltype(w)::value;
      swiglu_fwd_kernel<W, E><<<grid_for(T * I / W), kThreads, 0, as_stream(stream)>>>(
          static_cast<const E*>(gate_up), T, I, static_cast<E*>(out));
    });
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

void swiglu_bwd(DType dt, const void* dout, const void* gate_up, int64_t T, int64_t I, void* dgate_up, void* stream) {
  if (T * I == 0) return;
  dispatch_float(dt, "swiglu_bwd", [&](auto tag) {
    using E = decltype(tag);
    launch_vec_or_scalar<kVec<E>>(vectorizable<E>(I, gate_up, dgate_up) && aligned16(dout), [&](auto w) {
      constexpr int W = decltype(w)::value;
      swiglu_bwd_kernel<W, E><<<grid_for(T * I / W), kThreads, 0, as_stream(stream)>>>(
          static_cast<const E*>(dout), static_cast<const E*>(gate_up), T, I, static_cast<E*>(dgate_up));
    });
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
