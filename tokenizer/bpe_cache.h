// A bounded, thread-safe map from a pre-token's bytes to its BPE ids. Sharded by hash so that threads rarely
// wait on each other; a shard that fills up is emptied (the cache only saves work, it never changes results).
#pragma once
#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace qsft {

class BpeCache {
 public:
  // Appends the cached ids of key to out and returns true, or returns false when key is not cached.
  bool lookup(std::string_view key, std::vector<int32_t>& out) const;
  void insert(std::string_view key, const int32_t* ids, size_t n);

 private:
  static constexpr size_t kShards = 64;
  static constexpr size_t kEntriesPerShard = 4096;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>, Hash, std::equal_to<>> map;
  };
  Shard& shard(size_t hash) const { return shards_[(hash >> 7) % kShards]; }
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace qsft
