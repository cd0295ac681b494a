// Counter-based random numbers: every draw is a pure function of (seed, index), so the CPU reference and the CUDA
// kernels produce identical dropout masks and NEFTune noise, independent of threads, blocks or launch order.
#pragma once
#include <cstdint>

#include "kernels/host_device.h"

namespace qsft::rng {

// splitmix64's output function: a bijective 64-bit mixer with full avalanche.
QSFT_HD inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The index-th value of the splitmix64 stream whose state starts at mix64(seed).
QSFT_HD inline uint64_t hash(uint64_t seed, uint64_t index) {
  return mix64(mix64(seed) + (index + 1) * 0x9E3779B97F4A7C15ull);
}

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

}  // namespace qsft::rng
