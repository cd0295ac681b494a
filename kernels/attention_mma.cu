// Attention forward, FlashAttention-2 style on mma.sync (kernels/attention_mma_cuda.h has the fragment layouts).
// One block per (tile of kBr = 16 kWarps queries, query head h); warp w owns queries 16w..16w+15 and keeps
// everything of them in registers: its Q fragments, the [16 x kBc] scores S, and the [16 x D] output O. K/V tiles
// of kBc keys stream through two shared-memory stages (cp.async: tile t+1 loads while tile t is computed).
// In log2 units (scale log2(e) folded into one multiply, exp2 on the SFU):
//   x = (scale log2e) q k^T, masked to j in [begin_i, i];  m' = max(m, rowmax x);  p = 2^(x - m')
//   l = l 2^(m - m') + rowsum p;  O = O 2^(m - m') + bf16(p) V;   out = O / l,  lse = ln2 (m + log2 l)  (natural log)
// Why 16 rows per warp (8 warps, 128-row tiles for D = 128) rather than FA2's 4 warps x 32 rows: O (64 regs at
// D = 128), S (32) and Q (32) stay under ~160 registers with no spill risk, and 8 warps hide ldmatrix/exp2 latency;
// the price is that K/V fragments are read from shared memory once per 16 rather than 32 query rows. The
// 4-warps-x-32-rows layout is a kernels/dev variant to measure against.
#include "kernels/attention_mma_cuda.h"

namespace qsft::cuda {
namespace {

using namespace attn;

template <int D, int kWarps, int kBc>
struct FwdTiles {
  static constexpr int kBr = 16 * kWarps, kThreads = 32 * kWarps;
  static constexpr size_t kQBytes = size_t(kBr) * kLdm<D> * sizeof(bf16);
  static constexpr size_t kKvBytes = size_t(kBc) * kLdm<D> * sizeof(bf16);  // one K or V tile
  static constexpr size_t smem() { return kQBytes + 4 * kKvBytes; }         // q + 2 stages x (k, v)
};

template <int D, int kWarps, int kBc>
__global__ void __launch_bounds__(32 * kWarps) attention_fwd_mma_kernel(AttentionShape s, const bf16* q,
                                                                        const bf16* k, const bf16* v, bf16* out,
                                                                        float* lse) {
  using Tiles = FwdTiles<D, kWarps, kBc>;
  constexpr int kBr = Tiles::kBr, kThreads = Tiles::kThreads, kLd = kLdm<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* q_s = reinterpret_cast<bf16*>(smem);
  bf16* kv_s = reinterpret_cast<bf16*>(smem + Tiles::kQBytes);  // stage st: k at 2 st, v at 2 st + 1 tiles
  auto k_stage = [&](int st) { return kv_s + size_t(2 * st) * kBc * kLd; };
  auto v_stage = [&](int st) { return kv_s + size_t(2 * st + 1) * kBc * kLd; };

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, grp = lane >> 2, tig = lane & 3;
  // Heaviest (latest) query tiles first: causal work grows with the position in the sequence.
  const int64_t q0 = int64_t(gridDim.x - 1 - blockIdx.x) * kBr, h = blockIdx.y, g = h / (s.n / s.nkv);
  const float scale_log2 = rsqrtf(float(D)) * kLog2e;

  // This thread's two rows (grp and grp + 8 of the warp's 16) and their visible key range [begin, row].
  const int64_t warp_row0 = q0 + 16 * warp;
  int64_t row[2], begin[2];
  bool valid[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row[r] = warp_row0 + grp + 8 * r;
    valid[r] = row[r] < s.T;
    begin[r] = valid[r] ? seq_begin(s, row[r]) : 0;
  }
  const int64_t warp_last = min(warp_row0 + 15, s.T - 1);
  const int64_t warp_begin = warp_row0 < s.T ? seq_begin(s, warp_row0) : s.T;  // smallest begin of the warp

  const int64_t k_first = seq_begin(s, q0), k_last = min(q0 + kBr, s.T) - 1;
  const int tiles = int((k_last - k_first) / kBc) + 1;

  cp_async_rows<D, kThreads>(q_s, q, q0, kBr, s.T, s.n, h);
  cp_async_rows<D, kThreads>(k_stage(0), k, k_first, kBc, s.T, s.nkv, g);
  cp_async_rows<D, kThreads>(v_stage(0), v, k_first, kBc, s.T, s.nkv, g);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) load_a(qf[kk], q_s + 16 * warp * kLd + kk * 16, kLd);

  float o[D / 8][4];
  zero(o);
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // l: this thread's partial row sums

  for (int it = 0; it < tiles; ++it) {
    const int64_t k0 = k_first + int64_t(it) * kBc;
    if (it + 1 < tiles) {  // prefetch the next tile into the other stage
      cp_async_rows<D, kThreads>(k_stage((it + 1) & 1), k, k0 + kBc, kBc, s.T, s.nkv, g);
      cp_async_rows<D, kThreads>(v_stage((it + 1) & 1), v, k0 + kBc, kBc, s.T, s.nkv, g);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();  // tile it is in shared memory for every warp
    // Warps whose rows see none of these keys (all before k0, or all in later sequences) skip the tile: exact,
    // since every p would be 0 and m unchanged.
    if (warp_row0 < s.T && warp_last >= k0 && warp_begin <= k0 + kBc - 1) {
      float sc[kBc / 8][4];
      zero(sc);
      warp_abt_reg<D, kBc / 8>(sc, qf, k_stage(it & 1), kLd);
      float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        // No mask needed when every key of the tile is in [begin, row] (row < T then covers the tail).
        const bool full = valid[r] && k0 >= begin[r] && k0 + kBc - 1 <= row[r];
#pragma unroll
        for (int t = 0; t < kBc / 8; ++t)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int64_t j = k0 + 8 * t + 2 * tig + e;
            float x = sc[t][2 * r + e] * scale_log2;
            if (!full) x = valid[r] && j >= begin[r] && j <= row[r] ? x : -INFINITY;
            sc[t][2 * r + e] = x;
            tile_max[r] = fmaxf(tile_max[r], x);
          }
      }
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float m_new = fmaxf(m[r], quad_max(tile_max[r]));
        const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing visible yet: p = 0
        const float alpha = exp2f(m[r] - m_use);
        m[r] = m_new;
        float sum = 0.0f;
#pragma unroll
        for (int t = 0; t < kBc / 8; ++t)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float p = exp2f(sc[t][2 * r + e] - m_use);
            sc[t][2 * r + e] = p;
            sum += p;  // fp32 p (not its bf16 rounding): lse stays the exact log-sum-exp
          }
        l[r] = l[r] * alpha + sum;
#pragma unroll
        for (int t = 0; t < D / 8; ++t) {
          o[t][2 * r] *= alpha;
          o[t][2 * r + 1] *= alpha;
        }
      }
      warp_pv<kBc, D / 8>(o, sc, v_stage(it & 1), kLd);
    }
    __syncthreads();  // every warp is done with stage it & 1 before iteration it + 1 prefetches into it
  }

  float inv_l[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float sum = quad_sum(l[r]);
    inv_l[r] = sum > 0.0f ? 1.0f / sum : 0.0f;
    if (valid[r] && tig == 0) lse[h * s.T + row[r]] = kLn2 * (m[r] + log2f(sum));
  }
  store_rows_bf16<D / 8>(out, o, warp_row0 + grp, s.T, s.n, h, inv_l[0], inv_l[1]);
}

template <int D, int kWarps, int kBc>
void launch_fwd(const AttentionShape& s, const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse,
                cudaStream_t stream) {
  using Tiles = FwdTiles<D, kWarps, kBc>;
  const dim3 grid(unsigned((s.T + Tiles::kBr - 1) / Tiles::kBr), unsigned(s.n));
  launch_with_smem(attention_fwd_mma_kernel<D, kWarps, kBc>, grid, Tiles::kThreads, Tiles::smem(), stream, s, q, k,
                   v, out, lse);
}

}  // namespace

size_t attention_fwd_mma_smem(int64_t D, AttentionTiles tiles) {
  const bool large = tiles == AttentionTiles::Large;
  if (D == 64) return large ? FwdTiles<64, 8, 64>::smem() : FwdTiles<64, 4, 64>::smem();
  return large ? FwdTiles<128, 8, 64>::smem() : FwdTiles<128, 4, 64>::smem();
}

void attention_fwd_mma(const AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse,
                       void* stream, AttentionTiles tiles) {
  if (s.T == 0) return;
  check_shape(s, {q, k, v, out});
  QSFT_CHECK(attention_mma_supports_head_dim(s.D), "attention_fwd_mma: head_dim must be 64 or 128");
  tiles = resolve_tiles(s.D, tiles);
  const auto *qb = static_cast<const bf16*>(q), *kb = static_cast<const bf16*>(k), *vb = static_cast<const bf16*>(v);
  auto* ob = static_cast<bf16*>(out);
  const cudaStream_t st = as_stream(stream);
  const bool large = tiles == AttentionTiles::Large;
  if (s.D == 64)
    large ? launch_fwd<64, 8, 64>(s, qb, kb, vb, ob, lse, st) : launch_fwd<64, 4, 64>(s, qb, kb, vb, ob, lse, st);
  else
    large ? launch_fwd<128, 8, 64>(s, qb, kb, vb, ob, lse, st) : launch_fwd<128, 4, 64>(s, qb, kb, vb, ob, lse, st);
}

}  // namespace qsft::cuda
