// CUDA launcher of the deterministic reductions (kernels/reduce.h is the reference): the same decomposition into
// blocks of cpu::kReduceBlock elements, each summed in double by one warp in a fixed order, then the block sums by
// one block in a fixed order. Same input, same bits, on every run.
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/base/tensor.h"

namespace qsft::cuda {

// Device scratch sum_squares needs for n elements.
size_t sum_squares_scratch_bytes(int64_t n);
// sum_i x[i]^2 of x [n] (F32 or BF16), returned to the host (synchronises the stream).
double sum_squares(DType dt, const void* x, int64_t n, void* scratch, void* stream);
// The same sum rounded to fp32 into out (F32 [1] on the device), without synchronising.
void sum_squares_to(DType dt, const void* x, int64_t n, void* scratch, float* out, void* stream);

// The second pass of a reduction split over blocks (the fused LoRA kernels): for e < count,
//   sum(e) = partial[0, e] + partial[1, e] + ... + partial[ranges - 1, e]     fp32, in that order
// partial: fp32 [ranges, count] packed. add_partial_sums: dst[e] += scale * sum(e) (dst F32 [count] packed).
void add_partial_sums(const float* partial, int ranges, int64_t count, float scale, float* dst, void* stream);
// store_partial_sums: count = rows * cols, dst[row * ld + col] = bf16(scale * sum(row * cols + col)) (BF16 rows).
void store_partial_sums(const float* partial, int ranges, int64_t rows, int64_t cols, float scale, void* dst,
                        int64_t ld, void* stream);

}  // namespace qsft::cuda
