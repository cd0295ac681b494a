#include "kernels/kernel_util_cuda.h"
#include "kernels/rope_cuda.h"

namespace qsft::cuda {
namespace {

// One thread per rotated pair (t, head, i < D/2):
//   lo' = lo c - hi s,  hi' = hi c + lo s,   c = cos(angle) scale, s = direction sin(angle) scale
template <class T>
__global__ void rope_kernel(T* x, const int32_t* positions, int64_t T_tokens, int64_t n, int64_t D,
                            const float* inv_freq, float scale, float direction) {
  const int64_t half = D / 2;
  QSFT_GRID_STRIDE(idx, T_tokens * n * half) {
    const int64_t i = idx % half, row = idx / half;  // row = t * n + head
    const int64_t t = row / n;
    const float angle = float(positions[t]) * inv_freq[i];
    const float c = cosf(angle) * scale, s = direction * (sinf(angle) * scale);
    T* lo = x + row * D + i;
    T* hi = lo + half;
    const float a = load(lo), b = load(hi);
    store(lo, a * c - b * s);
    store(hi, b * c + a * s);
  }
}

void rotate(DType dt, void* x, const int32_t* positions, int64_t T, int64_t n, int64_t D, const float* inv_freq,
            float scale, float direction, void* stream) {
  QSFT_CHECK(D % 2 == 0, "rope head_dim must be even");
  const int64_t pairs = T * n * (D / 2);
  if (pairs == 0) return;
  dispatch_float(dt, "rope", [&](auto tag) {
    using E = decltype(tag);
    rope_kernel<E><<<grid_for(pairs), kThreads, 0, as_stream(stream)>>>(static_cast<E*>(x), positions, T, n, D,
                                                                        inv_freq, scale, direction);
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace

void rope_fwd(DType dt, void* x, const int32_t* positions, int64_t T, int64_t n, int64_t D, const float* inv_freq,
              float scale, void* stream) {
  rotate(dt, x, positions, T, n, D, inv_freq, scale, +1.0f, stream);
}

void rope_bwd(DType dt, void* dx, const int32_t* positions, int64_t T, int64_t n, int64_t D, const float* inv_freq,
              float scale, void* stream) {
  rotate(dt, dx, positions, T, n, D, inv_freq, scale, -1.0f, stream);
}

}  // namespace qsft::cuda
