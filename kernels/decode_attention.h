// Decode attention (generation): one new query token per sequence attends to its sequence's KV cache, read in
// place. The cache holds `slots` sequences of up to S positions; row b of the step uses cache slot slot[b], whose
// first len[b] positions are valid after this step's key/value is written at position len[b] - 1. Rows may share
// a slot (several new tokens of one sequence): every row's key/value is written before any row reads the cache.
//   s_j = scale * q[b, h] . k_cache[slot[b], j, g]   (j < len[b], g = h / (n / nkv): GQA), scale = D^-0.5
//   out[b, h] = sum_j softmax(s)_j v_cache[slot[b], j, g]
// Same arithmetic as attention_fwd (kernels/attention.h): double accumulation, max subtracted, one pass over keys.
#pragma once
#include <cstdint>

namespace qsft::cpu {

struct DecodeAttentionDims {
  int64_t B = 0;      // rows of the step (sequences decoding)
  int64_t n = 0;      // query heads
  int64_t nkv = 0;    // key/value heads (divides n)
  int64_t D = 0;      // head dim
  int64_t slots = 0;  // sequences the cache holds
  int64_t S = 0;      // positions per cache slot
};

// k_cache[slot[b], len[b] - 1] = k_new[b] and the same for v: the step's keys/values into the cache.
// k_new, v_new [B, nkv, D]; k_cache, v_cache [slots, S, nkv, D].
void kv_cache_append(const float* k_new, const float* v_new, const int32_t* slot, const int32_t* len,
                     const DecodeAttentionDims& d, float* k_cache, float* v_cache);

// q [B, n, D], k_cache, v_cache [slots, S, nkv, D], slot, len I32 [B] (1 <= len[b] <= S), out [B, n, D].
void decode_attention(const float* q, const float* k_cache, const float* v_cache, const int32_t* slot,
                      const int32_t* len, const DecodeAttentionDims& d, float* out);

}  // namespace qsft::cpu
