// Attention forward. One block per (tile of kBr = 64 queries, query head h); warp w owns queries 16w..16w+15.
// For each tile of kBc = 64 keys between the first query's sequence start and the last query:
//   S = q k^T (tensor cores, fp32) ; s = scale S, masked to the query's own sequence and j <= i
//   m' = max(m, rowmax s);  p = exp(s - m');  l = l e^(m - m') + rowsum p;  O = O e^(m - m') + p v
// then out = O / l and lse = m + log l. O, S and P live in shared memory per warp, so only K/V loads need the block.
// D is the instantiated head dim; a smaller head dim s.D runs with the columns [s.D, D) zero-filled and not stored.
#include "kernels/attention_tile_cuda.h"

namespace qsft::cuda {
namespace {

using namespace attn;

constexpr int kBr = kWarps * kWarpRows;  // queries per block
constexpr int kBc = 64;                  // keys per tile

template <int D>
size_t fwd_smem_bytes() {
  return 3 * smem_bytes<bf16>(size_t(kBr) * ld_bf16<D>)    // q, k, v tiles
         + smem_bytes<float>(size_t(kBr) * ld_score<kBc>)  // scores, 16 rows per warp
         + smem_bytes<bf16>(size_t(kBr) * ld_prob<kBc>)    // probabilities
         + smem_bytes<float>(size_t(kBr) * ld_acc<D>);     // output accumulator
}

template <int D>
__global__ void __launch_bounds__(kBlockThreads)
    attention_fwd_kernel(AttentionShape s, const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse) {
  extern __shared__ __align__(128) unsigned char smem[];
  SmemCarver carve{smem};
  bf16* q_s = carve.take<bf16>(size_t(kBr) * ld_bf16<D>);
  bf16* k_s = carve.take<bf16>(size_t(kBc) * ld_bf16<D>);
  bf16* v_s = carve.take<bf16>(size_t(kBc) * ld_bf16<D>);
  float* s_s = carve.take<float>(size_t(kBr) * ld_score<kBc>);
  bf16* p_s = carve.take<bf16>(size_t(kBr) * ld_prob<kBc>);
  float* o_s = carve.take<float>(size_t(kBr) * ld_acc<D>);

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t q0 = int64_t(blockIdx.x) * kBr, h = blockIdx.y, g = h / (s.n / s.nkv);
  const int dh = int(s.D);
  const float scale = rsqrtf(float(dh));
  // This lane's row r of the warp's 16 and its half of the columns.
  const int r = lane >> 1, half = lane & 1;
  const int row = warp * kWarpRows + r;
  const int64_t i = q0 + row;
  const bool row_valid = i < s.T;
  const int64_t begin_i = row_valid ? seq_begin(s, i) : 0;
  float* s_w = s_s + warp * kWarpRows * ld_score<kBc>;
  bf16* p_w = p_s + warp * kWarpRows * ld_prob<kBc>;
  float* o_w = o_s + warp * kWarpRows * ld_acc<D>;

  load_rows<D>(q_s, ld_bf16<D>, q, q0, kBr, s.T, s.q_ld, h, dh);
  for (int c = lane; c < kWarpRows * D; c += 32) o_w[(c / D) * ld_acc<D> + c % D] = 0.0f;
  float m = -INFINITY, l = 0.0f;

  const int64_t last = min(q0 + kBr, s.T) - 1;
  for (int64_t k0 = seq_begin(s, q0); k0 <= last; k0 += kBc) {
    __syncthreads();  // the previous tile's k, v are no longer read
    load_rows<D>(k_s, ld_bf16<D>, k, k0, kBc, s.T, s.k_ld, g, dh);
    load_rows<D>(v_s, ld_bf16<D>, v, k0, kBc, s.T, s.v_ld, g, dh);
    __syncthreads();
    warp_scores<D, kBc / 16>(s_w, ld_score<kBc>, q_s + warp * kWarpRows * ld_bf16<D>, ld_bf16<D>, k_s, ld_bf16<D>);
    __syncwarp();
    // Online softmax over this lane's 32 columns; the lane pair (half 0, 1) completes the row.
    float sc[kBc / 2];
    float tile_max = -INFINITY;
#pragma unroll
    for (int c = 0; c < kBc / 2; ++c) {
      const int64_t j = k0 + half * (kBc / 2) + c;
      const bool ok = row_valid && j >= begin_i && j <= i;
      sc[c] = ok ? s_w[r * ld_score<kBc> + half * (kBc / 2) + c] * scale : -INFINITY;
      tile_max = fmaxf(tile_max, sc[c]);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    const float m_new = fmaxf(m, tile_max);
    const float alpha = m_new == -INFINITY ? 1.0f : expf(m - m_new);
    float row_sum = 0.0f;
#pragma unroll
    for (int c = 0; c < kBc / 2; ++c) {
      const float p = sc[c] == -INFINITY ? 0.0f : expf(sc[c] - m_new);
      p_w[r * ld_prob<kBc> + half * (kBc / 2) + c] = __float2bfloat16_rn(p);
      // fp32 p, not its bf16 rounding: lse must be the log-sum-exp of the scores (the backward recomputes
      // P = exp(s - lse) and the CPU reference's lse is exact); summing rounded p's puts ~1e-3 errors into lse.
      row_sum += p;
    }
    row_sum += __shfl_xor_sync(0xffffffffu, row_sum, 1);
    l = l * alpha + row_sum;
    m = m_new;
    for (int d = half * (D / 2); d < (half + 1) * (D / 2); ++d) o_w[r * ld_acc<D> + d] *= alpha;
    __syncwarp();
    warp_mma_acc<FragBRow, D / 16, kBc / 16>(o_w, ld_acc<D>, p_w, ld_prob<kBc>, v_s, 16, 16 * ld_bf16<D>, ld_bf16<D>);
    __syncwarp();
  }
  if (!row_valid) return;
  const float inv_l = 1.0f / l;
  bf16* out_i = out + (i * s.n + h) * dh;
  for (int d = half * (D / 2); d < (half + 1) * (D / 2) && d < dh; ++d)
    out_i[d] = __float2bfloat16_rn(o_w[r * ld_acc<D> + d] * inv_l);
  if (half == 0) lse[h * s.T + i] = m + logf(l);
}

}  // namespace

void attention_fwd_wmma(const AttentionShape& shape, const void* q, const void* k, const void* v, void* out, float* lse,
                        void* stream) {
  if (shape.T == 0) return;
  const AttentionShape s = check_shape(shape, {q, k, v, out});
  dispatch_head_dim(s.D, [&](auto d) {
    constexpr int D = decltype(d)::value;
    const dim3 grid(unsigned((s.T + kBr - 1) / kBr), unsigned(s.n));
    launch_with_smem(attention_fwd_kernel<D>, grid, kBlockThreads, fwd_smem_bytes<D>(), as_stream(stream), s,
                     static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v),
                     static_cast<bf16*>(out), lse);
  });
}

}  // namespace qsft::cuda
