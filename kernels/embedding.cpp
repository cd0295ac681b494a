#include "kernels/embedding.h"

#include <algorithm>

#include "kernels/rng.h"

namespace qsft::cpu {

void embedding_fwd(const int32_t* ids, const float* table, int64_t T, int64_t H, float* out) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) std::copy_n(table + int64_t(ids[t]) * H, H, out + t * H);
}

void neftune_noise(float* x, int64_t n, float scale, uint64_t seed) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] += scale * (2.0f * rng::uniform16(seed, uint64_t(i)) - 1.0f);
}

}  // namespace qsft::cpu
