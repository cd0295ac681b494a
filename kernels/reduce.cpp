#include "kernels/reduce.h"

#include <algorithm>
#include <vector>

namespace qsft::cpu {

double sum_squares(const float* x, int64_t n) {
  const int64_t blocks = (n + kReduceBlock - 1) / kReduceBlock;
  std::vector<double> block_sums(static_cast<size_t>(blocks));  // [blocks]
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    double s = 0.0;
    for (int64_t i = b * kReduceBlock; i < std::min(n, (b + 1) * kReduceBlock); ++i) s += double(x[i]) * x[i];
    block_sums[b] = s;
  }
  double total = 0.0;
  for (double s : block_sums) total += s;
  return total;
}

}  // namespace qsft::cpu
