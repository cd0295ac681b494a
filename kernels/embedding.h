// Token embedding gather and NEFTune noise on its output.
#pragma once
#include <cstdint>

namespace qsft::cpu {

// out[t, :] = table[ids[t], :].   ids [T] (each in [0, V): the caller checks), table [V, H], out [T, H]
void embedding_fwd(const int32_t* ids, const float* table, int64_t T, int64_t H, float* out);

// NEFTune: x[i] += scale * (2 * u(seed, i) - 1), u = rng::uniform16, the counter-based uniform of kernels/rng.h,
// so the noise is U(-scale, scale) (on a 2^-15 grid) and a pure function of (seed, i). x [n]
void neftune_noise(float* x, int64_t n, float scale, uint64_t seed);

}  // namespace qsft::cpu
