// Causal self-attention over packed sequences, GQA, without a T x T matrix: each query row walks the keys of its
// own sequence up to itself (two passes over a row of scores), saving the log-sum-exp for the backward.
//   s_ij = scale * q_i . k_j (j in i's sequence, j <= i), scale = D^-0.5
//   P_ij = exp(s_ij - lse_i), lse_i = log sum_j exp(s_ij),   out_i = sum_j P_ij v_j
// Query head h reads kv head h / (n / nkv); K and V are never copied per query head.
#pragma once
#include <cstdint>

namespace qsft::cpu {

struct AttentionDims {
  int64_t T = 0;    // tokens of the packed batch
  int64_t n = 0;    // query heads
  int64_t nkv = 0;  // key/value heads (divides n)
  int64_t D = 0;    // head dim
  // Elements from one token's row to the next (0: packed, n*D or nkv*D): q and dq, k and dk, v and dv may be strided
  // head views of wider rows (the columns of a fused QKV output); out, dout and lse are packed.
  int64_t q_ld = 0, k_ld = 0, v_ld = 0;
  int64_t q_stride() const { return q_ld ? q_ld : n * D; }
  int64_t k_stride() const { return k_ld ? k_ld : nkv * D; }
  int64_t v_stride() const { return v_ld ? v_ld : nkv * D; }
};

// q [T, n, D], k, v [T, nkv, D] (token rows dims.q_stride(), k_stride(), v_stride() apart), cu_seqlens [num_seqs + 1]
// (0 = first, T = last), out [T, n, D], lse [n, T].
void attention_fwd(const float* q, const float* k, const float* v, const int32_t* cu_seqlens, int num_seqs,
                   const AttentionDims& dims, float* out, float* lse);

// dq [T, n, D], dk, dv [T, nkv, D] (the row strides of q, k, v) are overwritten. With delta_i = dout_i . out_i and
// dS_ij = P_ij (dout_i . v_j - delta_i): dq_i = scale sum_j dS_ij k_j, dk_j = scale sum_i dS_ij q_i, dv_j = sum_i P_ij
// dout_i (dk, dv summed over the query heads of the group). dq is computed query-major, dk/dv key-major: no two threads
// write one row.
void attention_bwd(const float* dout, const float* q, const float* k, const float* v, const float* out,
                   const float* lse, const int32_t* cu_seqlens, int num_seqs, const AttentionDims& dims, float* dq,
                   float* dk, float* dv);

}  // namespace qsft::cpu
