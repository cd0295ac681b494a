// Counter-based random numbers: every draw is a pure function of (seed, index), so the CPU reference and the CUDA
// kernels produce identical dropout masks and NEFTune noise, independent of threads, blocks or launch order.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/host_device.h"

namespace qsft::rng {

// splitmix64's output function: a bijective 64-bit mixer with full avalanche.
QSFT_HD inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The index-th value of the splitmix64 stream whose state starts at mixed_seed = mix64(seed): kernels mix a seed
// once (at launch) and hash many indices from it.
QSFT_HD inline uint64_t hash_mixed(uint64_t mixed_seed, uint64_t index) {
  return mix64(mixed_seed + (index + 1) * 0x9E3779B97F4A7C15ull);
}
QSFT_HD inline uint64_t hash(uint64_t seed, uint64_t index) { return hash_mixed(mix64(seed), index); }

// Uniform float in [0, 1): the top 24 bits of the hash times 2^-24 (every value exactly representable).
QSFT_HD inline float uniform(uint64_t seed, uint64_t index) {
  return float(hash(seed, index) >> 40) * (1.0f / 16777216.0f);
}

// Cheap draws for masks and noise: one hash makes four 16-bit uniforms. Element `index` takes 16-bit field
// index % 4 of hash(seed, index / 4), times 2^-16: a value in [0, 1) on a grid of 2^-16 (dropout's p is thus
// resolved to 1.5e-5). A kernel moving 4k consecutive elements from a multiple of 4 hashes once per 4 of them.
QSFT_HD inline float field16(uint64_t h, int k) { return float((h >> (16 * k)) & 0xFFFFu) * (1.0f / 65536.0f); }
QSFT_HD inline float uniform16(uint64_t seed, uint64_t index) { return field16(hash(seed, index / 4), int(index % 4)); }
// u[k] = uniform16(seed, i + k), k < N. With N a multiple of 4 (i must then be one too): N / 4 hashes.
template <int N>
QSFT_HD inline void uniforms16(uint64_t seed, uint64_t i, float (&u)[N]) {
  if constexpr (N % 4 == 0) {
    for (int c = 0; c < N / 4; ++c) {
      const uint64_t h = hash(seed, i / 4 + uint64_t(c));
      for (int k = 0; k < 4; ++k) u[4 * c + k] = field16(h, k);
    }
  } else {
    for (int k = 0; k < N; ++k) u[k] = uniform16(seed, i + uint64_t(k));
  }
}

// Dropout keeps element i when uniform16(seed, i) >= p. With f its 16-bit field, f 2^-16 >= p <=> f >= p 2^16 (the
// scaling by 2^16 is exact in float) <=> f >= ceil(p 2^16), f an integer: kernels test the field against this
// threshold (0 for p <= 0, 65536 keeps nothing) and never convert it to a float. The same masks, bit for bit.
QSFT_HD inline uint32_t keep_threshold16(float p) { return p <= 0.0f ? 0u : uint32_t(ceilf(p * 65536.0f)); }
// Whether field k of hash h passes the threshold.
QSFT_HD inline bool kept16(uint64_t h, int k, uint32_t threshold) {
  return uint32_t((h >> (16 * k)) & 0xFFFFu) >= threshold;
}
// keep[k] = (uniform16(seed, i + k) >= p) for k < N, from mixed_seed = mix64(seed) and keep_threshold16(p). With N a
// multiple of 4 (i must then be one too): N / 4 hashes.
template <int N>
QSFT_HD inline void keeps16(uint64_t mixed_seed, uint64_t i, uint32_t threshold, bool (&keep)[N]) {
  if constexpr (N % 4 == 0) {
    for (int c = 0; c < N / 4; ++c) {
      const uint64_t h = hash_mixed(mixed_seed, i / 4 + uint64_t(c));
      for (int k = 0; k < 4; ++k) keep[4 * c + k] = kept16(h, k, threshold);
    }
  } else {
    for (int k = 0; k < N; ++k) keep[k] = kept16(hash_mixed(mixed_seed, (i + k) / 4), int((i + k) % 4), threshold);
  }
}

}  // namespace qsft::rng
