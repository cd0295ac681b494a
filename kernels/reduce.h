// Deterministic reductions: a fixed block decomposition, each block summed in double in index order, the block
// sums added in block order. The result is bit-identical for any thread count.
#pragma once
#include <cstdint>

namespace qsft::cpu {

constexpr int64_t kReduceBlock = 4096;  // elements per block

double sum_squares(const float* x, int64_t n);  // sum_i x[i]^2   x [n]

}  // namespace qsft::cpu
