// The 64-bit hash of the token cache (its key and its checksum), over bytes given at once or piece by piece: the
// pieces' hash equals the hash of their concatenation.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace qsft {

class Hasher {
 public:
  explicit Hasher(uint64_t seed = 0) : h_(seed) {}

  Hasher& update(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    total_ += n;
    if (carried_ > 0) {  // complete the word left from the last piece
      const size_t take = std::min(n, 8 - carried_);
      std::memcpy(carry_ + carried_, p, take);
      carried_ += take, p += take, n -= take;
      if (carried_ < 8) return *this;
      h_ = mix(h_, word(carry_));
      carried_ = 0;
    }
    for (; n >= 8; p += 8, n -= 8) h_ = mix(h_, word(p));
    std::memcpy(carry_, p, n);
    carried_ = n;
    return *this;
  }

  uint64_t digest() const {
    uint64_t tail = total_;  // the length, so that trailing zeros count
    std::memcpy(&tail, carry_, carried_);
    return mix(mix(h_, tail), total_);
  }

 private:
  static uint64_t mix(uint64_t h, uint64_t w) {
    h ^= w * 0x9e3779b97f4a7c15ull;
    h = (h << 31 | h >> 33) * 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 29);
  }
  static uint64_t word(const unsigned char* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  }

  uint64_t h_;
  uint64_t total_ = 0;
  unsigned char carry_[8] = {};
  size_t carried_ = 0;
};

// The hash of n bytes, continuing from h.
inline uint64_t hash_bytes(const void* data, size_t n, uint64_t h) { return Hasher(h).update(data, n).digest(); }

}  // namespace qsft
