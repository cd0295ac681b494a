#include "kernels/argmax.h"

#include <algorithm>

namespace qsft::cpu {

void argmax_rows(const float* x, int64_t R, int64_t V, int32_t* out) {
  for (int64_t r = 0; r < R; ++r) out[r] = int32_t(std::max_element(x + r * V, x + (r + 1) * V) - (x + r * V));
}

}  // namespace qsft::cpu
