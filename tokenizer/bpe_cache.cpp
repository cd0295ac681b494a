#include "tokenizer/bpe_cache.h"

namespace qsft {

bool BpeCache::lookup(std::string_view key, std::vector<int32_t>& out) const {
  size_t h = Hash{}(key);
  Shard& s = shard(h);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) return false;
  out.insert(out.end(), it->second.begin(), it->second.end());
  return true;
}

void BpeCache::insert(std::string_view key, const int32_t* ids, size_t n) {
  size_t h = Hash{}(key);
  Shard& s = shard(h);
  std::lock_guard lock(s.mu);
  if (s.map.size() >= kEntriesPerShard) s.map.clear();
  s.map.emplace(std::string(key), std::vector<int32_t>(ids, ids + n));
}

}  // namespace qsft
