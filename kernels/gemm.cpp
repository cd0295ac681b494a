// Cache-blocked GEMM in the GotoBLAS shape: op(A) and op(B) are packed block by block into contiguous
// micro-panels (which also absorbs the four transpose cases), and a kMR x kNR register tile accumulates
// sum_k a[r][k] * b[k][c] from them. C is first set to beta * C + bias, then every K block adds alpha * its part.
#include "kernels/gemm.h"

#include <algorithm>
#include <memory>

namespace qsft::cpu {
namespace {

constexpr int64_t kMR = 4;    // rows of a register tile
constexpr int64_t kNR = 8;    // columns of a register tile
constexpr int64_t kKC = 256;  // depth of a packed block: a micro-panel pair is (kMR + kNR) * kKC floats, in L1
constexpr int64_t kNC = 512;  // columns of a packed B block: kKC * kNC floats = 512 KiB, in L2
constexpr int64_t kParallelWork = int64_t(1) << 16;  // below this many multiply-adds one thread is faster

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Element (r, c) of op(X), X row-major with row stride ld.
inline float op_at(const float* X, int64_t ld, bool trans, int64_t r, int64_t c) {
  return trans ? X[c * ld + r] : X[r * ld + c];
}

// C[M, N] = beta * C + bias (beta == 0: C is not read).
void init_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc, const float* bias) {
#pragma omp for schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    for (int64_t j = 0; j < N; ++j) c[j] = (beta == 0.0f ? 0.0f : beta * c[j]) + (bias ? bias[j] : 0.0f);
  }
}

// op(A)[0:M, k0:k0+kc] -> micro-panels [ceil(M/kMR)][kc][kMR], rows past M zero.
void pack_a(const float* A, int64_t lda, bool transA, int64_t M, int64_t k0, int64_t kc, float* packed) {
#pragma omp for schedule(static)
  for (int64_t p = 0; p < ceil_div(M, kMR); ++p) {
    float* dst = packed + p * kc * kMR;
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t r = 0; r < kMR; ++r) {
        const int64_t i = p * kMR + r;
        dst[k * kMR + r] = i < M ? op_at(A, lda, transA, i, k0 + k) : 0.0f;
      }
  }
}

// op(B)[k0:k0+kc, n0:n0+nc] -> micro-panels [ceil(nc/kNR)][kc][kNR], columns past nc zero.
void pack_b(const float* B, int64_t ldb, bool transB, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float* packed) {
#pragma omp for schedule(static)
  for (int64_t p = 0; p < ceil_div(nc, kNR); ++p) {
    float* dst = packed + p * kc * kNR;
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t c = 0; c < kNR; ++c) {
        const int64_t j = p * kNR + c;
        dst[k * kNR + c] = j < nc ? op_at(B, ldb, transB, k0 + k, n0 + j) : 0.0f;
      }
  }
}

// C[0:rows, 0:cols] += alpha * a_panel @ b_panel, a_panel [kc][kMR], b_panel [kc][kNR] (rows <= kMR, cols <= kNR).
void tile_update(const float* a, const float* b, int64_t kc, float alpha, float* C, int64_t ldc, int64_t rows,
                 int64_t cols) {
  float acc[kMR][kNR] = {};
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t r = 0; r < kMR; ++r) {
      const float ar = a[k * kMR + r];
      for (int64_t c = 0; c < kNR; ++c) acc[r][c] += ar * b[k * kNR + c];
    }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) C[r * ldc + c] += alpha * acc[r][c];
}

}  // namespace

void gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, bool transA, const float* B,
          int64_t ldb, bool transB, float beta, float* C, int64_t ldc, const float* bias) {
  if (M <= 0 || N <= 0) return;
  const int64_t m_panels = ceil_div(M, kMR);
  const int64_t kc_max = std::min(K, kKC);
  std::unique_ptr<float[]> a_packed(new float[size_t(m_panels * kMR * kc_max)]);
  std::unique_ptr<float[]> b_packed(new float[size_t(ceil_div(std::min(N, kNC), kNR) * kNR * kc_max)]);
#pragma omp parallel if (M * N * K > kParallelWork)
  {
    init_c(M, N, beta, C, ldc, bias);
    for (int64_t k0 = 0; k0 < K; k0 += kKC) {
      const int64_t kc = std::min(kKC, K - k0);
      pack_a(A, lda, transA, M, k0, kc, a_packed.get());
      for (int64_t n0 = 0; n0 < N; n0 += kNC) {
        const int64_t nc = std::min(kNC, N - n0);
        pack_b(B, ldb, transB, k0, kc, n0, nc, b_packed.get());
        const int64_t n_panels = ceil_div(nc, kNR);
#pragma omp for collapse(2) schedule(static)
        for (int64_t p = 0; p < m_panels; ++p)
          for (int64_t q = 0; q < n_panels; ++q) {
            const int64_t i0 = p * kMR, j0 = n0 + q * kNR;
            tile_update(a_packed.get() + p * kc * kMR, b_packed.get() + q * kc * kNR, kc, alpha, C + i0 * ldc + j0, ldc,
                        std::min(kMR, M - i0), std::min(kNR, N - j0));
          }
      }
    }
  }
}

}  // namespace qsft::cpu
