#include <algorithm>

#include "kernels/kernel_util_cuda.h"
#include "kernels/rope_cuda.h"

namespace qsft::cuda {
namespace {

// One thread per (token t, group of G heads, W consecutive i < D/2): the W angles' cos and sin are computed once
// (sincosf) and rotate those i of the group's heads (the heads of a token share their angles); G = n unless the
// tokens alone are too few to fill the GPU. 16-byte vectors when D/2 is a multiple of W, x is aligned and the
// token row stride ld keeps every row aligned:
//   lo' = lo c - hi s,  hi' = hi c + lo s,   c = cos(angle) scale, s = direction sin(angle) scale
// Before: one thread per (t, head, W pairs), so every head recomputed the trig and the index divisions in 64 bits,
// which held rope at 33-55% of the copy bandwidth. Then one head at a time (its two loads, then its two stores, which
// the compiler cannot move the next head's loads above): 79 % at the 0.5B shape, 85 % at 7B (H200, 45ffbc3's run);
// now kHeadsInFlight heads' loads are issued before their stores (the same arithmetic, the same results).
constexpr int kHeadsInFlight = 4;
template <int W, class T>
__global__ void rope_kernel(T* x, const int32_t* positions, int64_t T_tokens, int64_t n, int64_t G, int64_t D,
                            int64_t ld, const float* inv_freq, float scale, float direction) {
  const int64_t half = D / 2, chunks = half / W;  // W divides D/2 (the launcher's condition for W > 1)
  const int64_t groups = (n + G - 1) / G;
  QSFT_GRID_STRIDE(item, T_tokens * groups * chunks) {
    const int64_t row = item / chunks, i = (item - row * chunks) * W;  // row = t * groups + group
    const int64_t t = row / groups, head0 = (row - t * groups) * G, heads = min(G, n - head0);
    const float pos = float(positions[t]);
    float c[W], s[W];
#pragma unroll
    for (int k = 0; k < W; ++k) {
      sincosf(pos * inv_freq[i + k], &s[k], &c[k]);
      c[k] *= scale;
      s[k] = direction * (s[k] * scale);
    }
    T* lo = x + t * ld + head0 * D + i;
    for (int64_t h0 = 0; h0 < heads; h0 += kHeadsInFlight, lo += kHeadsInFlight * D) {
      float a[kHeadsInFlight][W], b[kHeadsInFlight][W];
#pragma unroll
      for (int u = 0; u < kHeadsInFlight; ++u)
        if (h0 + u < heads) {
          load_n<W>(lo + u * D, a[u]);
          load_n<W>(lo + u * D + half, b[u]);
        }
#pragma unroll
      for (int u = 0; u < kHeadsInFlight; ++u) {
        if (h0 + u >= heads) continue;
#pragma unroll
        for (int k = 0; k < W; ++k) {
          const float a2 = a[u][k] * c[k] - b[u][k] * s[k];
          b[u][k] = b[u][k] * c[k] + a[u][k] * s[k];
          a[u][k] = a2;
        }
        store_n<W>(lo + u * D, a[u]);
        store_n<W>(lo + u * D + half, b[u]);
      }
    }
  }
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
      // heads per thread: all n, or fewer when T * D/2 / W threads would not give ~2^18 (a full H100/H200)
      const int64_t items = T * (D / 2) / W, groups = std::min<int64_t>(n, std::max<int64_t>(1, (1 << 18) / items));
      const int64_t G = (n + groups - 1) / groups;
      rope_kernel<W, E><<<grid_for(items * ((n + G - 1) / G)), kThreads, 0, as_stream(stream)>>>(
          static_cast<E*>(x), positions, T, n, G, D, ld, inv_freq, scale, direction);
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
