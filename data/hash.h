// The 64-bit hash of the token cache (its key and its checksum), over bytes given at once or piece by piece: the
// pieces' hash equals the hash of their concatenation. XXH3 (xxHash), which hashes at memory speed: the key hashes
// every data file at each start.
#pragma once
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>

namespace qsft {

class Hasher {
 public:
  explicit Hasher(uint64_t seed = 0) : state_(XXH3_createState(), &XXH3_freeState) {
    if (!state_ || XXH3_64bits_reset_withSeed(state_.get(), seed) != XXH_OK) throw std::bad_alloc();
  }

  Hasher& update(const void* data, size_t n) {
    XXH3_64bits_update(state_.get(), data, n);
    return *this;
  }

  uint64_t digest() const { return XXH3_64bits_digest(state_.get()); }

 private:
  std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> state_;
};

// The hash of n bytes, continuing from h (h seeds it).
inline uint64_t hash_bytes(const void* data, size_t n, uint64_t h) { return XXH3_64bits_withSeed(data, n, h); }

}  // namespace qsft
