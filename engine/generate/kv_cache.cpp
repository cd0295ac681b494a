#include "engine/generate/kv_cache.h"

namespace qsft {

void KvCache::carve(Arena& a, const Qwen2Config& c, int64_t num_slots, int64_t cap, DType dt) {
  slots = num_slots;
  capacity = cap;
  const int64_t nkv = c.num_key_value_heads, D = c.head_dim;
  k.resize(size_t(c.num_hidden_layers));
  v.resize(size_t(c.num_hidden_layers));
  for (size_t l = 0; l < k.size(); ++l) {
    k[l] = a.take(dt, {slots, capacity, nkv, D});
    v[l] = a.take(dt, {slots, capacity, nkv, D});
  }
}

Tensor KvCache::positions(const Tensor& cache, int64_t s, int64_t n) {
  const int64_t cap = cache.dim(1), nkv = cache.dim(2), D = cache.dim(3);
  return cache.view({cache.dim(0) * cap, nkv, D}).rows(s * cap, s * cap + n);
}

}  // namespace qsft
