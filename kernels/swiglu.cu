#include "kernels/kernel_util_cuda.h"
#include "kernels/swiglu_cuda.h"

namespace qsft::cuda {
namespace {

// One thread per (t, i): reads gate_up[t, i] and gate_up[t, I + i].
template <class T>
__global__ void swiglu_fwd_kernel(const T* gate_up, int64_t T_tokens, int64_t I, T* out) {
  QSFT_GRID_STRIDE(idx, T_tokens * I) {
    const int64_t t = idx / I, i = idx % I;
    const float g = load(gate_up + t * 2 * I + i), up = load(gate_up + t * 2 * I + I + i);
    store(out + idx, g / (1.0f + expf(-g)) * up);
  }
}

template <class T>
__global__ void swiglu_bwd_kernel(const T* dout, const T* gate_up, int64_t T_tokens, int64_t I, T* dgate_up) {
  QSFT_GRID_STRIDE(idx, T_tokens * I) {
    const int64_t t = idx / I, i = idx % I;
    const float g = load(gate_up + t * 2 * I + i), up = load(gate_up + t * 2 * I + I + i), dy = load(dout + idx);
    const float sig = 1.0f / (1.0f + expf(-g));
    store(dgate_up + t * 2 * I + i, dy * up * sig * (1.0f + g * (1.0f - sig)));
    store(dgate_up + t * 2 * I + I + i, dy * g * sig);
  }
}

}  // namespace

void swiglu_fwd(DType dt, const void* gate_up, int64_t T, int64_t I, void* out, void* stream) {
  if (T * I == 0) return;
  dispatch_float(dt, "swiglu_fwd", [&](auto tag) {
    using E = decltype(tag);
    swiglu_fwd_kernel<E><<<grid_for(T * I), kThreads, 0, as_stream(stream)>>>(static_cast<const E*>(gate_up), T, I,
                                                                              static_cast<E*>(out));
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

void swiglu_bwd(DType dt, const void* dout, const void* gate_up, int64_t T, int64_t I, void* dgate_up, void* stream) {
  if (T * I == 0) return;
  dispatch_float(dt, "swiglu_bwd", [&](auto tag) {
    using E = decltype(tag);
    swiglu_bwd_kernel<E><<<grid_for(T * I), kThreads, 0, as_stream(stream)>>>(
        static_cast<const E*>(dout), static_cast<const E*>(gate_up), T, I, static_cast<E*>(dgate_up));
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
