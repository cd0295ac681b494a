// The KV cache of generation: every layer's keys and values (after RoPE, as attention reads them) for `slots`
// sequences of up to `capacity` positions, carved from an arena like the rest of the model's memory:
//   k[l], v[l]  [slots, capacity, nkv, D]  in the activation dtype (F32 on the CPU, BF16 on the GPU).
// Prefill copies a prompt's keys and values into its slot; each decode step appends one position (an extend step:
// its rows' positions) in Ops::decode_attention, which reads the slot in place.
#pragma once
#include <vector>

#include "engine/arena.h"
#include "engine/io/model_config.h"

namespace qsft {

struct KvCache {
  std::vector<Tensor> k, v;  // per layer
  int64_t slots = 0, capacity = 0;

  void carve(Arena& a, const Qwen2Config& c, int64_t slots, int64_t capacity, DType dt);
  // Positions [0, n) of slot s in layer l's keys or values: [n, nkv, D].
  static Tensor positions(const Tensor& cache, int64_t s, int64_t n);
};

}  // namespace qsft
