// The mma.sync attention forward kernel (kernels/attention_mma_cuda.h has the fragment layouts), a template over
// its tile configuration: attention_mma.cu instantiates the production ones, kernels/dev/attention/ variants others.
// One block per (tile of kBr = 16 kRowTiles kWarps queries, query head h); warp w owns 16 kRowTiles consecutive
// queries and keeps everything of them in registers: the [rows x kBc] scores S, the [rows x D] output O, and (with
// one row tile) its Q fragments. K/V tiles of kBc keys stream through two shared-memory stages (cp.async: tile t+1
// loads while tile t is computed). In log2 units (scale log2(e) folded into one multiply, exp2 on the SFU):
//   x = (scale log2e) q k^T, masked to j in [begin_i, i];  m' = max(m, rowmax x);  p = 2^(x - m')
//   l = l 2^(m - m') + rowsum p;  O = O 2^(m - m') + bf16(p) V;   out = O / l,  lse = ln2 (m + log2 l)  (natural log)
// Each thread holds rows grp and grp + 8 of each row tile (fragment C layout); row max and sum reduce over the quad.
// D is the instantiated head dim; a head dim s.D < D (a multiple of 8) runs with the columns [s.D, D) of the q, k, v
// tiles zero-filled (nothing added to q k^T; zero output columns, not stored) and scale = s.D^-0.5.
// CUDA code: include from .cu files only.
#pragma once
#include "kernels/attention_mma_cuda.h"

namespace qsft::cuda::attn {

// kStages K/V stages: 2 (tile t + 1 loads while t is computed; two block barriers per tile) or 3 (tile t + 2 loads
// into the stage tile t - 1 used, which every warp has left once it passes tile t's barrier: one barrier per tile).
template <int D, int kWarps, int kRowTiles, int kBc, int kStages = 2>
struct FwdTiles {
  static_assert(kStages == 2 || kStages == 3, "two or three K/V stages");
  static constexpr int kWarpRows = 16 * kRowTiles, kBr = kWarpRows * kWarps, kThreads = 32 * kWarps;
  static constexpr size_t kQBytes = size_t(kBr) * kLdm<D> * sizeof(bf16);
  static constexpr size_t kKvBytes = size_t(kBc) * kLdm<D> * sizeof(bf16);  // one K or V tile
  static constexpr size_t smem() { return kQBytes + 2 * kStages * kKvBytes; }  // q + stages x (k, v)
};

// One key tile's online-softmax step for a warp's rows (the formulas above): the scores sc [rows x 8 NT] (keys
// k0..) become p in place, the running max m_run and this thread's partial sums l are updated and O rescaled.
// kMasked: key j of row i counts only when i < T and j is in [begin_i, i] (else p = 0); without it, every key does.
template <bool kMasked, int RT, int NT, int DT>
__device__ __forceinline__ void softmax_tile(float (&sc)[RT][NT][4], float (&o)[RT][DT][4], float (&m_run)[RT][2],
                                             float (&l)[RT][2], float scale_log2, int64_t k0,
                                             const int64_t (&row)[RT][2], const int64_t (&begin)[RT][2],
                                             const bool (&valid)[RT][2]) {
  const int tig = threadIdx.x & 3;
  float alpha[RT][2];  // 2^(m - m'), O's rescale
#pragma unroll
  for (int m = 0; m < RT; ++m)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float tile_max = -INFINITY;
#pragma unroll
      for (int t = 0; t < NT; ++t)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float x = sc[m][t][2 * r + e] * scale_log2;
          if constexpr (kMasked) {
            const int64_t j = k0 + 8 * t + 2 * tig + e;
            x = valid[m][r] && j >= begin[m][r] && j <= row[m][r] ? x : -INFINITY;
          }
          sc[m][t][2 * r + e] = x;
          tile_max = fmaxf(tile_max, x);
        }
      const float m_new = fmaxf(m_run[m][r], quad_max(tile_max));
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing visible yet: p = 0
      alpha[m][r] = exp2_sfu(m_run[m][r] - m_use);
      m_run[m][r] = m_new;
      float sum = 0.0f;
#pragma unroll
      for (int t = 0; t < NT; ++t)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float p = exp2_sfu(sc[m][t][2 * r + e] - m_use);
          sc[m][t][2 * r + e] = p;
          sum += p;  // fp32 p (not its bf16 rounding): lse stays the exact log-sum-exp
        }
      l[m][r] = l[m][r] * alpha[m][r] + sum;
    }
  // O *= alpha, skipped when no row of the warp has a new max (alpha = 1 exactly: the same bits), as on most tiles
  // once the maxima settle.
  bool rescale = false;
#pragma unroll
  for (int m = 0; m < RT; ++m) rescale = rescale || alpha[m][0] != 1.0f || alpha[m][1] != 1.0f;
  if (__any_sync(0xffffffffu, rescale)) {
#pragma unroll
    for (int m = 0; m < RT; ++m)
#pragma unroll
      for (int t = 0; t < DT; ++t) {
        o[m][t][0] *= alpha[m][0];
        o[m][t][1] *= alpha[m][0];
        o[m][t][2] *= alpha[m][1];
        o[m][t][3] *= alpha[m][1];
      }
  }
}

// kMinBlocks: blocks per SM asked of ptxas (__launch_bounds__; 0: ptxas's choice).
template <int D, int kWarps, int kRowTiles, int kBc, int kMinBlocks = 0, int kStages = 2>
__global__ void __launch_bounds__(32 * kWarps, kMinBlocks)
    attention_fwd_mma_kernel(AttentionShape s, const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse) {
  using Tiles = FwdTiles<D, kWarps, kRowTiles, kBc, kStages>;
  constexpr int RT = kRowTiles, kWarpRows = Tiles::kWarpRows, kBr = Tiles::kBr, kThreads = Tiles::kThreads;
  constexpr int kLd = kLdm<D>;
  // Q fragments take 2 D / 16 registers per row tile: kept in registers for one row tile, re-read from shared
  // memory per k-step (once per 8 kBc / 16 MMAs) for two, where O and S already take ~190 registers at D = 128.
  constexpr bool kQInRegisters = RT == 1;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* q_s = reinterpret_cast<bf16*>(smem);
  const KvStages<D, kBc, kThreads> kv{reinterpret_cast<bf16*>(smem + Tiles::kQBytes)};

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, grp = lane >> 2, tig = lane & 3;
  // Heaviest (latest) query tiles first: causal work grows with the position in the sequence.
  const int64_t q0 = int64_t(gridDim.x - 1 - blockIdx.x) * kBr, h = blockIdx.y, g = h / (s.n / s.nkv);
  const float scale_log2 = rsqrtf(float(s.D)) * kLog2e;  // the head dim's, not the padded D's

  // This thread's rows (grp and grp + 8 of each row tile) and their visible key range [begin, row].
  const int64_t warp_row0 = q0 + int64_t(kWarpRows) * warp;
  int64_t row[RT][2], begin[RT][2];
  bool valid[RT][2];
#pragma unroll
  for (int m = 0; m < RT; ++m)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      row[m][r] = warp_row0 + 16 * m + grp + 8 * r;
      valid[m][r] = row[m][r] < s.T;
      begin[m][r] = valid[m][r] ? seq_begin(s, row[m][r]) : 0;
    }
  const int64_t warp_last = min(warp_row0 + kWarpRows - 1, s.T - 1);
  const int64_t warp_begin = warp_row0 < s.T ? seq_begin(s, warp_row0) : s.T;  // smallest begin of the warp
  // Largest begin of the warp's rows (its last row's), T when some row is past the end: a key tile [k0, k0 + kBc)
  // with k0 >= warp_begin_max and k0 + kBc - 1 <= warp_row0 is visible to every row of the warp, no mask needed.
  const int64_t warp_begin_max = warp_row0 + kWarpRows - 1 < s.T ? seq_begin(s, warp_row0 + kWarpRows - 1) : s.T;

  const int64_t k_first = seq_begin(s, q0), k_last = min(q0 + kBr, s.T) - 1;
  const int tiles = int((k_last - k_first) / kBc) + 1;

  cp_async_rows<D, kThreads>(q_s, q, q0, kBr, s.T, s.q_ld, h, int(s.D));
  kv.load(0, k, v, k_first, s, g);
  cp_async_commit();
  if (kStages == 3 && tiles > 1) {  // tile 1 in flight too; wait for q and tile 0 only
    kv.load(1, k, v, k_first + kBc, s, g);
    cp_async_commit();
    cp_async_wait<1>();
  } else {
    cp_async_wait<0>();
  }
  __syncthreads();
  const bf16* q_w = q_s + kWarpRows * warp * kLd;
  uint32_t qf[kQInRegisters ? D / 16 : 1][RT][4];
  if constexpr (kQInRegisters) {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) load_a(qf[kk][0], q_w + kk * 16, kLd);
  }

  float o[RT][D / 8][4];
  zero(o);
  float m_run[RT][2], l[RT][2];  // running max (log2 units), this thread's partial row sums
#pragma unroll
  for (int m = 0; m < RT; ++m) m_run[m][0] = m_run[m][1] = -INFINITY, l[m][0] = l[m][1] = 0.0f;

  for (int it = 0; it < tiles; ++it) {
    const int64_t k0 = k_first + int64_t(it) * kBc;
    const int st = it % kStages;  // tile it's stage
    if constexpr (kStages == 2) {
      pipeline_wait(it, tiles, [&](int next) { kv.load(next, k, v, k0 + kBc, s, g); });  // tile it in shared memory
    } else {
      if (it > 0) {  // (tile 0: waited for above)
        it + 1 < tiles ? cp_async_wait<1>() : cp_async_wait<0>();
        __syncthreads();  // tile it visible to every warp, and every warp is done with tile it - 1's stage
      }
      if (it + 2 < tiles) {
        kv.load((it + 2) % 3, k, v, k0 + 2 * kBc, s, g);
        cp_async_commit();
      }
    }
    // Warps whose rows see none of these keys (all before k0, or all in later sequences) skip the tile: exact,
    // since every p would be 0 and m unchanged.
    if (warp_row0 < s.T && warp_last >= k0 && warp_begin <= k0 + kBc - 1) {
      float sc[RT][kBc / 8][4];
      zero(sc);
      if constexpr (kQInRegisters)
        warp_abt_reg<D, RT, kBc / 8>(sc, qf, kv.k(st), kLd);
      else
        warp_abt<D, RT, kBc / 8>(sc, q_w, kLd, kv.k(st), kLd);
      // Masked only on the tiles that need it (the diagonal, sequence starts, rows past T): a warp-uniform branch
      // between two copies, so the many full tiles carry no per-element compares.
      if (k0 >= warp_begin_max && k0 + kBc - 1 <= warp_row0)
        softmax_tile<false>(sc, o, m_run, l, scale_log2, k0, row, begin, valid);
      else
        softmax_tile<true>(sc, o, m_run, l, scale_log2, k0, row, begin, valid);
      warp_pv<kBc, RT, D / 8>(o, sc, kv.v(st), kLd);
    }
    if constexpr (kStages == 2) __syncthreads();  // every warp is done with stage st before it + 1 refills it
  }

#pragma unroll
  for (int m = 0; m < RT; ++m) {
    float inv_l[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float sum = quad_sum(l[m][r]);
      inv_l[r] = sum > 0.0f ? 1.0f / sum : 0.0f;
      if (valid[m][r] && tig == 0) lse[h * s.T + row[m][r]] = kLn2 * (m_run[m][r] + log2f(sum));
    }
    store_rows_bf16<D / 8>(out, o[m], warp_row0 + 16 * m + grp, s.T, s.n * s.D, h, int(s.D), inv_l[0], inv_l[1]);
  }
}

template <int D, int kWarps, int kRowTiles, int kBc, int kMinBlocks = 0, int kStages = 2>
void launch_fwd_mma(const AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse,
                    void* stream) {
  using Tiles = FwdTiles<D, kWarps, kRowTiles, kBc, kStages>;
  const dim3 grid(unsigned((s.T + Tiles::kBr - 1) / Tiles::kBr), unsigned(s.n));
  launch_with_smem(attention_fwd_mma_kernel<D, kWarps, kRowTiles, kBc, kMinBlocks, kStages>, grid, Tiles::kThreads,
                   Tiles::smem(), as_stream(stream), s, static_cast<const bf16*>(q), static_cast<const bf16*>(k),
                   static_cast<const bf16*>(v), static_cast<bf16*>(out), lse);
}

}  // namespace qsft::cuda::attn
