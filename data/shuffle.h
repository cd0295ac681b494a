// Deterministic shuffles: the same (seed, stream) gives the same order on every platform and standard library
// (std::shuffle and the std distributions are implementation-defined, so they are not used).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace qsft {

// SplitMix64: a small, well-mixed 64-bit generator.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n > 0, without modulo bias (Lemire's multiply-and-reject).
  uint64_t below(uint64_t n) {
    for (;;) {
      unsigned __int128 m = (unsigned __int128)next() * n;
      if (uint64_t(m) >= (-n) % n) return uint64_t(m >> 64);
    }
  }

 private:
  uint64_t state_;
};

// A generator for one purpose of one run: seed, and a stream number that separates purposes (epochs, splits).
inline SplitMix64 seeded_rng(uint64_t seed, uint64_t stream) {
  SplitMix64 mix(seed ^ (stream * 0xd1b54a32d192ed03ull));
  return SplitMix64(mix.next());
}

// Fisher-Yates shuffle of v with rng.
template <class T>
void shuffle_in_place(std::vector<T>& v, SplitMix64& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

// 0..n-1 in the order (seed, stream) gives.
inline std::vector<uint32_t> shuffled_indices(size_t n, uint64_t seed, uint64_t stream) {
  std::vector<uint32_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint32_t(i);
  SplitMix64 rng = seeded_rng(seed, stream);
  shuffle_in_place(v, rng);
  return v;
}

}  // namespace qsft
