// CUDA flash-style attention (kernels/attention.h is the reference): causal within each packed sequence
// (cu_seqlens), GQA without copying K/V (query head h reads kv head h / (n / nkv)), bf16 q/k/v/out/gradients,
// fp32 softmax statistics (lse [n, T]), head_dim 16, 32, 64 or 128. Tiles of queries and keys stream through
// shared memory with an online softmax: no T x T matrix exists anywhere. The backward is deterministic by
// construction (no atomics): dK/dV are computed key-major and dQ query-major, each element by one thread block.
#pragma once
#include <cstddef>
#include <cstdint>

namespace qsft::cuda {

struct AttentionShape {
  int64_t T = 0;    // tokens of the packed batch
  int64_t n = 0;    // query heads
  int64_t nkv = 0;  // kv heads (divides n)
  int64_t D = 0;    // head dim
  const int32_t* cu_seqlens = nullptr;  // I32 [num_seqs + 1] on the device
  int num_seqs = 0;
};

bool attention_supports_head_dim(int64_t D);

// q [T, n, D], k, v [T, nkv, D], out [T, n, D] (bf16); lse F32 [n, T].
void attention_fwd(const AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse,
                   void* stream);

// Device scratch the backward needs (delta = rowsum(dout * out), F32 [n, T]).
size_t attention_bwd_scratch_bytes(const AttentionShape& s);
// dq [T, n, D], dk, dv [T, nkv, D] (bf16) overwritten.
void attention_bwd(const AttentionShape& s, const void* dout, const void* q, const void* k, const void* v,
                   const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream);

}  // namespace qsft::cuda
