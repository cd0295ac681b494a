#include "kernels/kernel_util_cuda.h"
#include "kernels/rope_cuda.h"

namespace qsft::cuda {
namespace {

// Grid-stride over the rotated pairs (t, head, i < D/2), W consecutive i per step (16-byte vectors when D/2 is a
// multiple of W, x is aligned and the token row stride ld keeps every row aligned):
//   lo' = lo c - hi s,  hi' = hi c + lo s,   c = cos(angle) scale, s = direction sin(angle) scale
template <int W, class T>
__global__ void rope_kernel(T* x, const int32_t* positions, int64_t T_tokens, int64_t n, int64_t D, int64_t ld,
                            const float* inv_freq, float scale, float direction) {
  const int64_t half = D / 2;
  grid_stride_vec<W>(T_tokens * n * half, [&](auto w, int64_t idx) {
    constexpr int N = decltype(w)::value;
    const int64_t i = idx % half, row = idx / half, t = row / n;  // row = t * n + head
    const float pos = float(positions[t]);
    T* lo = x + t * ld + (row - t * n) * D + i;
    T* hi = lo + half;
    float a[N], b[N];
    load_n<N>(lo, a);
    load_n<N>(hi, b);
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const float angle = pos * inv_freq[i + k];
      const float c = cosf(angle) * scale, s = direction * (sinf(angle) * scale);
      const float a2 = a[k] * c - b[k] * s;
      b[k] = b[k] * c + a[k] * s;
      a[k] = a2;
    }
    store_n<N>(lo, a);
    store_n<N>(hi, b);
  });
}

void rotate(DType dt, void* x, const int32_t* positions, int64_t T, int64_t n, int64_t D, int64_t ld,
            const float* inv_freq, float scale, float direction, void* stream) {
  QSFT_CHECK(D % 2 == 0, "rope head_dim must be even");
  const int64_t pairs = T * n * (D / 2);
  if (pairs == 0) return;
  dispatch_float(dt, "rope", [&](auto tag) {
    using E = decltype(tag);
    const bool vec = (D / 2) % kVec<E> == 0 && ld % kVec<E> == 0 && aligned16(x);
    launch_vec_or_scalar<kVec<E>>(vec, [&](auto w) {
      constexpr int W = decltype(w)::value;
      rope_kernel<W, E><<<grid_for(pairs / W), kThreads, 0, as_stream(stream)>>>(static_cast<E*>(x), positions, T, n, D,
                                                                                 ld, inv_freq, scale, direction);
    });
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace

void rope_fwd(DType dt, void* x, const int32_t* positions, int64_t T, int64_t n, int64_t D, int64_t ld,
              const float* inv_freq, float scale, void* stream) {
  rotate(dt, x, positions, T, n, D, ld, inv_freq, scale, +1.0f, stream);
}

void rope_bwd(DType dt, void* dx, const int32_t* positions, int64_t T, int64_t n, int64_t D, int64_t ld,
              const float* inv_freq, float scale, void* stream) {
  rotate(dt, dx, positions, T, n, D, ld, inv_freq, scale, -1.0f, stream);
}

}  // namespace qsft::cuda
