// Counter-based random numbers: every draw is a pure function of (seed, index), so the CPU reference and the CUDA
// kernels produce identical dropout masks and NEFTune noise, independent of threads, blocks or launch order.
#pragma once
#include <cstdint>

#ifndef QSFT_HD
#if defined(__CUDACC__)
#define QSFT_HD __host__ __device__
#else
#define QSFT_HD
#endif
#endif

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

}  // namespace qsft::rng
