// GEMM: C = alpha * op(A) @ op(B) + beta * C (+ bias broadcast over rows), row-major with leading dimensions.
#pragma once
#include <cstdint>

namespace qsft::cpu {

// op(A) is [M, K] (A is stored [K, M] when transA), op(B) is [K, N] (B is stored [N, K] when transB), C is [M, N].
// lda, ldb, ldc: row strides of A, B, C as stored (>= their column counts), so column slices need no copy.
// beta == 0 never reads C (whatever C holds, NaN included, is overwritten). bias [N] or nullptr, added unscaled.
// fp32 accumulation; cache-blocked and packed, OpenMP over register tiles.
void gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, bool transA, const float* B,
          int64_t ldb, bool transB, float beta, float* C, int64_t ldc, const float* bias);

}  // namespace qsft::cpu
