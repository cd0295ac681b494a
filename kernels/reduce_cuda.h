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

}  // namespace qsft::cuda
