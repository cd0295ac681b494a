// The mma.sync attention backward kernels, templates over their tile configuration (BwdConfig): attention_mma_bwd.cu
// runs the production ones, kernels/dev/attention/ variants others. Deterministic by default (no atomics: every
// gradient element is summed by one warp in a fixed order), FlashAttention-2's recomputation with
// register-resident accumulators:
//   delta_i = dout_i . out_i                                         (attention_delta, shared with the WMMA path)
//   dK/dV, key-major: one block per (16 kWarps keys, kv head g), heavy blocks first (heavy_first_key_block); warp
//     w owns keys 16w..16w+15 and holds their dK, dV [16 x D] in registers. It walks the group's query heads and
//     the queries that can see its keys, in tiles of kBq through two cp.async stages (q, dout, lse, delta):
//       S^T = K q^T, dP^T = V dout^T;  P^T = 2^(scale log2e S^T - log2e lse_i);  dS^T = P^T (dP^T - delta_i)
//       dV += bf16(P^T) dout,  dK += bf16(dS^T) q                  (P^T and dS^T never leave registers)
//   dQ, query-major: one block per (16 kWarps queries, head h), warp w owning 16 of them, walking key tiles of
//     kBc through two cp.async stages: S = q K^T, dP = dout V^T, dS as above, dQ += bf16(dS) K.
// dK and dQ are scaled by `scale` at the end. The two passes compute q k^T and dout v^T twice (7 GEMM-sized
// products instead of 5): the price of determinism without fp32 atomics or a T x T dS.
// Fast mode (AttentionBwdMode::AtomicDq, kAtomicDq): no dQ pass; the dK/dV block also stages its dS^T tile
// [kBc keys x kBq queries] in shared memory (bf16) and its warps compute dQ_tile += dS K_block, each warp one
// [16 x kCols] slab, added to an fp32 [T, n, D] accumulator with atomics, then scaled and rounded to bf16.
// D is the instantiated head dim (64 or 128); a head dim s.D < D (a multiple of 8) runs with zero-filled columns
// [s.D, D) in every q, k, v, dout tile: they add nothing to S or dP, their dQ/dK/dV columns are zero and not stored.
// CUDA code: include from .cu files only.
#pragma once
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/attention_mma_cuda.h"

namespace qsft::cuda::attn {

// The two cp.async stages of the query-side tiles a key-major pass streams (kBq queries of one head per step):
// stage st holds q at tile 2 st and dout at tile 2 st + 1 of base, lse at 2 st and delta at 2 st + 1 of stat.
template <int D, int kBq, int kThreads>
struct QueryStages {
  bf16* base;
  float* stat;
  __device__ bf16* q(int st) const { return base + size_t(2 * st) * kBq * kLdm<D>; }
  __device__ bf16* dout(int st) const { return base + size_t(2 * st + 1) * kBq * kLdm<D>; }
  __device__ const float* lse(int st) const { return stat + (2 * st) * kBq; }
  __device__ const float* delta(int st) const { return stat + (2 * st + 1) * kBq; }
  // Queries q0.. of head h of q, dout [T, n, D] (token rows s.q_ld and n D apart) and of lse, delta [n, T] into
  // stage st (asynchronous).
  __device__ void load(int st, const bf16* q_g, const bf16* dout_g, const float* lse_g, const float* delta_g,
                       int64_t q0, const AttentionShape& s, int64_t h) const {
    const int dh = int(s.D);
    cp_async_rows<D, kThreads>(q(st), q_g, q0, kBq, s.T, s.q_ld, h, dh);
    cp_async_rows<D, kThreads>(dout(st), dout_g, q0, kBq, s.T, s.n * dh, h, dh);
    cp_async_floats<kThreads>(stat + (2 * st) * kBq, lse_g + h * s.T, q0, kBq, s.T);
    cp_async_floats<kThreads>(stat + (2 * st + 1) * kBq, delta_g + h * s.T, q0, kBq, s.T);
  }
};

template <int D, int kWarps, int kBq, bool kAtomicDq>
struct DkdvTiles {
  static constexpr int kBc = 16 * kWarps, kThreads = 32 * kWarps;
  static constexpr int kLdDs = kBq + 8;                                      // dS^T rows: 16 bytes of padding, as kLdm
  static constexpr size_t kKeyBytes = size_t(kBc) * kLdm<D> * sizeof(bf16);  // k or v
  static constexpr size_t kQBytes = size_t(kBq) * kLdm<D> * sizeof(bf16);    // q or dout, one stage
  static constexpr size_t kStatBytes = 4 * kBq * sizeof(float);              // lse, delta, two stages
  static constexpr size_t kDsBytes = kAtomicDq ? size_t(kBc) * kLdDs * sizeof(bf16) : 0;
  static constexpr size_t smem() { return 2 * kKeyBytes + 4 * kQBytes + kStatBytes + kDsBytes; }
  // Fast mode's dQ tile [kBq x D]: warp w computes row tile w % (kBq / 16), columns kCols (w / (kBq / 16)) ..
  static constexpr int kCols = D * (kBq / 16) / kWarps;
  static_assert(!kAtomicDq || (kCols % 16 == 0 && kWarps % (kBq / 16) == 0), "dQ slabs must tile [kBq x D]");
};

// dq_acc[q0 + i, h, :] += dS [kBq x kBc] K_block, this warp's [16 x kCols] slab (columns below s.D; dq_acc
// [T, n, s.D]); ds_s holds dS^T (key-major). kPairs: one 8-byte atomic per column pair on sm_90 (atomicAdd on
// float2: half the RED instructions; scalar below sm_90).
template <int D, int kWarps, int kBq, bool kPairs = false>
__device__ __forceinline__ void dq_tile_atomic(float* dq_acc, const AttentionShape& s, int64_t q0, int64_t h,
                                               const bf16* ds_s, const bf16* k_s) {
  using Tiles = DkdvTiles<D, kWarps, kBq, true>;
  constexpr int kCols = Tiles::kCols, kLd = kLdm<D>;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, grp = lane >> 2, tig = lane & 3;
  const int mt = warp % (kBq / 16), col0 = (warp / (kBq / 16)) * kCols;
  float acc[1][kCols / 8][4];
  zero(acc);
#pragma unroll
  for (int kk = 0; kk < Tiles::kBc / 16; ++kk) {
    uint32_t af[4];
    load_a_trans(af, ds_s + 16 * kk * Tiles::kLdDs + 16 * mt, Tiles::kLdDs);
#pragma unroll
    for (int t = 0; t < kCols / 8; t += 2) {
      uint32_t b[4];
      load_b_cols(b, k_s + 16 * kk * kLd + col0 + 8 * t, kLd);
      mma_16816(acc[0][t], af, b[0], b[1]);
      mma_16816(acc[0][t + 1], af, b[2], b[3]);
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t i = q0 + 16 * mt + grp + 8 * r;
    if (i >= s.T) continue;
    float* dst = dq_acc + (i * s.n + h) * s.D + col0 + 2 * tig;
#pragma unroll
    for (int t = 0; t < kCols / 8; ++t) {
      if (col0 + 8 * t >= s.D) continue;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
      if constexpr (kPairs) {  // dst + 8 t is 8-byte aligned: s.D, col0 and 2 tig are even
        atomicAdd(reinterpret_cast<float2*>(dst + 8 * t), make_float2(acc[0][t][2 * r], acc[0][t][2 * r + 1]));
        continue;
      }
#endif
      atomicAdd(dst + 8 * t, acc[0][t][2 * r]);
      atomicAdd(dst + 8 * t + 1, acc[0][t][2 * r + 1]);
    }
  }
}

template <int D, int kWarps, int kBq, bool kAtomicDq, int kMinBlocks>
__global__ void __launch_bounds__(32 * kWarps, kMinBlocks)
    attention_dkdv_mma_kernel(AttentionShape s, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                              const float* lse, const float* delta, bf16* dk, bf16* dv, float* dq_acc) {
  using Tiles = DkdvTiles<D, kWarps, kBq, kAtomicDq>;
  constexpr int kBc = Tiles::kBc, kThreads = Tiles::kThreads, kLd = kLdm<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* k_s = reinterpret_cast<bf16*>(smem);
  bf16* v_s = reinterpret_cast<bf16*>(smem + Tiles::kKeyBytes);
  const QueryStages<D, kBq, kThreads> qs{reinterpret_cast<bf16*>(smem + 2 * Tiles::kKeyBytes),
                                         reinterpret_cast<float*>(smem + 2 * Tiles::kKeyBytes + 4 * Tiles::kQBytes)};
  bf16* ds_s = reinterpret_cast<bf16*>(smem + 2 * Tiles::kKeyBytes + 4 * Tiles::kQBytes + Tiles::kStatBytes);

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, grp = lane >> 2, tig = lane & 3;
  static_assert(4 * Tiles::kQBytes >= kHeavyFirstBytes, "heavy_first_key_block's ints fit the query stages");
  const int64_t k0 = int64_t(heavy_first_key_block<kBc, kBq, kThreads>(s, int(blockIdx.x),
                                                                        reinterpret_cast<int*>(qs.base))) * kBc;
  const int64_t g = blockIdx.y, group = s.n / s.nkv;
  const int dh = int(s.D);
  const float scale = rsqrtf(float(dh)), scale_log2 = scale * kLog2e;

  // This thread's two keys (grp and grp + 8 of the warp's 16) and the end of their sequences: key j is seen by
  // queries [j, end_j).
  const int64_t warp_key0 = k0 + 16 * warp;
  int64_t key[2], end[2];
  bool valid[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    key[r] = warp_key0 + grp + 8 * r;
    valid[r] = key[r] < s.T;
    end[r] = valid[r] ? seq_end(s, key[r]) : 0;
  }
  const int64_t warp_end = warp_key0 < s.T ? seq_end(s, min(warp_key0 + 15, s.T - 1)) : 0;  // largest end
  // Smallest end (the first key's), 0 when some key is past T: a query tile [q0, q0 + kBq) with q0 >= the last key
  // and q0 + kBq <= warp_end_min sees every key of the warp, no mask needed.
  const int64_t warp_end_min = warp_key0 + 15 < s.T ? seq_end(s, warp_key0) : 0;

  const int64_t q_end = seq_end(s, min(k0 + kBc, s.T) - 1);  // queries [k0, q_end) see some key of the block
  const int q_tiles = int((q_end - k0 + kBq - 1) / kBq), steps = int(group) * q_tiles;
  // Step it: query tile it % q_tiles of head g group + it / q_tiles, counted (tile, h) without dividing.
  auto load_step = [&](int tile, int64_t h, int st) {
    qs.load(st, q, dout, lse, delta, k0 + int64_t(tile) * kBq, s, h);
  };

  cp_async_rows<D, kThreads>(k_s, k, k0, kBc, s.T, s.k_ld, g, dh);
  cp_async_rows<D, kThreads>(v_s, v, k0, kBc, s.T, s.v_ld, g, dh);
  load_step(0, g * group, 0);
  cp_async_commit();

  float dk_acc[1][D / 8][4], dv_acc[1][D / 8][4];  // [one row tile of 16 keys]
  zero(dk_acc);
  zero(dv_acc);
  int tile = 0;
  int64_t h = g * group;
  for (int it = 0; it < steps; ++it) {
    const int st = it & 1;
    const int64_t q0 = k0 + int64_t(tile) * kBq;
    const int next_tile = tile + 1 == q_tiles ? 0 : tile + 1;
    const int64_t next_h = next_tile == 0 ? h + 1 : h;
    pipeline_wait(it, steps, [&](int next) { load_step(next_tile, next_h, next); });
    float pt[1][kBq / 8][4], dst[1][kBq / 8][4];  // S^T -> P^T, dP^T -> dS^T: [16 keys x kBq queries]
    zero(pt);
    zero(dst);
    // Skip when no query of the tile sees a key of the warp (all queries before its keys, or past their ends).
    if (warp_key0 < s.T && q0 + kBq - 1 >= warp_key0 && q0 < warp_end) {
      warp_abt<D, 1, kBq / 8>(pt, k_s + 16 * warp * kLd, kLd, qs.q(st), kLd);
      warp_abt<D, 1, kBq / 8>(dst, v_s + 16 * warp * kLd, kLd, qs.dout(st), kLd);
      const float* lse_t = qs.lse(st);
      const float* delta_t = qs.delta(st);
      // P^T and dS^T, masked to [key, end) only on tiles that need it (warp-uniform branch: no per-element
      // compares on the many full tiles).
      auto probs = [&](auto masked) {
#pragma unroll
        for (int r = 0; r < 2; ++r)
#pragma unroll
          for (int t = 0; t < kBq / 8; ++t)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int col = 8 * t + 2 * tig + e;
              bool seen = true;
              if constexpr (decltype(masked)::value) {
                const int64_t i = q0 + col;
                seen = valid[r] && i >= key[r] && i < end[r];
              }
              const float p = seen ? exp2_sfu(pt[0][t][2 * r + e] * scale_log2 - lse_t[col] * kLog2e) : 0.0f;
              pt[0][t][2 * r + e] = p;
              dst[0][t][2 * r + e] = p * (dst[0][t][2 * r + e] - delta_t[col]);
            }
      };
      if (q0 >= warp_key0 + 15 && q0 + kBq <= warp_end_min)
        probs(std::false_type{});
      else
        probs(std::true_type{});
      warp_pv<kBq, 1, D / 8>(dv_acc, pt, qs.dout(st), kLd);
      warp_pv<kBq, 1, D / 8>(dk_acc, dst, qs.q(st), kLd);
    }
    if constexpr (kAtomicDq) {  // this warp's dS^T rows (zeros when skipped), then the block's dQ tile
#pragma unroll
      for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int t = 0; t < kBq / 8; ++t)
          *reinterpret_cast<uint32_t*>(ds_s + (16 * warp + grp + 8 * r) * Tiles::kLdDs + 8 * t + 2 * tig) =
              pack_bf16(dst[0][t][2 * r], dst[0][t][2 * r + 1]);
      __syncthreads();
      dq_tile_atomic<D, kWarps, kBq>(dq_acc, s, q0, h, ds_s, k_s);
    }
    __syncthreads();  // stage st (and ds_s) is free for step it + 1's writes and the prefetch of step it + 2
    tile = next_tile;
    h = next_h;
  }
  store_rows_bf16<D / 8>(dk, dk_acc[0], warp_key0 + grp, s.T, s.k_ld, g, dh, scale, scale);
  store_rows_bf16<D / 8>(dv, dv_acc[0], warp_key0 + grp, s.T, s.v_ld, g, dh, 1.0f, 1.0f);
}

template <int D, int kWarps, int kBc>
struct DqTiles {
  static constexpr int kBr = 16 * kWarps, kThreads = 32 * kWarps;
  static constexpr size_t kQBytes = size_t(kBr) * kLdm<D> * sizeof(bf16);   // q or dout
  static constexpr size_t kKvBytes = size_t(kBc) * kLdm<D> * sizeof(bf16);  // k or v, one stage
  static constexpr size_t smem() { return 2 * kQBytes + 4 * kKvBytes; }
};

// kQdoInRegisters: the warp's q and dout A fragments loaded once into registers (2 D / 4 of them) instead of from
// shared memory at every key tile.
template <int D, int kWarps, int kBc, int kMinBlocks, bool kQdoInRegisters>
__global__ void __launch_bounds__(32 * kWarps, kMinBlocks)
    attention_dq_mma_kernel(AttentionShape s, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                            const float* lse, const float* delta, bf16* dq) {
  using Tiles = DqTiles<D, kWarps, kBc>;
  constexpr int kBr = Tiles::kBr, kThreads = Tiles::kThreads, kLd = kLdm<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* q_s = reinterpret_cast<bf16*>(smem);
  bf16* do_s = reinterpret_cast<bf16*>(smem + Tiles::kQBytes);
  const KvStages<D, kBc, kThreads> kv{reinterpret_cast<bf16*>(smem + 2 * Tiles::kQBytes)};

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, grp = lane >> 2, tig = lane & 3;
  const int64_t q0 = int64_t(gridDim.x - 1 - blockIdx.x) * kBr, h = blockIdx.y, g = h / (s.n / s.nkv);
  const int dh = int(s.D);
  const float scale = rsqrtf(float(dh)), scale_log2 = scale * kLog2e;

  const int64_t warp_row0 = q0 + 16 * warp;
  int64_t row[2], begin[2];
  bool valid[2];
  float lse2[2], dlt[2];  // log2e lse_i, delta_i
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row[r] = warp_row0 + grp + 8 * r;
    valid[r] = row[r] < s.T;
    begin[r] = valid[r] ? seq_begin(s, row[r]) : 0;
    lse2[r] = valid[r] ? lse[h * s.T + row[r]] * kLog2e : 0.0f;
    dlt[r] = valid[r] ? delta[h * s.T + row[r]] : 0.0f;
  }
  const int64_t warp_last = min(warp_row0 + 15, s.T - 1);
  const int64_t warp_begin = warp_row0 < s.T ? seq_begin(s, warp_row0) : s.T;
  // Largest begin (the last row's), T when some row is past T: key tiles with k0 >= warp_begin_max and
  // k0 + kBc - 1 <= warp_row0 are visible to every row of the warp.
  const int64_t warp_begin_max = warp_row0 + 15 < s.T ? seq_begin(s, warp_row0 + 15) : s.T;
  const int64_t k_first = seq_begin(s, q0), k_last = min(q0 + kBr, s.T) - 1;
  const int tiles = int((k_last - k_first) / kBc) + 1;

  cp_async_rows<D, kThreads>(q_s, q, q0, kBr, s.T, s.q_ld, h, dh);
  cp_async_rows<D, kThreads>(do_s, dout, q0, kBr, s.T, s.n * dh, h, dh);
  kv.load(0, k, v, k_first, s, g);
  cp_async_commit();

  float dq_acc[1][D / 8][4];  // [one row tile of 16 queries]
  zero(dq_acc);
  uint32_t qf[kQdoInRegisters ? D / 16 : 1][1][4], df[kQdoInRegisters ? D / 16 : 1][1][4];
  for (int it = 0; it < tiles; ++it) {
    const int64_t k0 = k_first + int64_t(it) * kBc;
    pipeline_wait(it, tiles, [&](int st) { kv.load(st, k, v, k0 + kBc, s, g); });
    if constexpr (kQdoInRegisters) {
      if (it == 0) {  // q and dout arrived with the first key tile
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
          load_a(qf[kk][0], q_s + 16 * warp * kLd + kk * 16, kLd);
          load_a(df[kk][0], do_s + 16 * warp * kLd + kk * 16, kLd);
        }
      }
    }
    if (warp_row0 < s.T && warp_last >= k0 && warp_begin <= k0 + kBc - 1) {
      float sc[1][kBc / 8][4], dp[1][kBc / 8][4];  // S -> P -> dS, dP: [16 queries x kBc keys]
      zero(sc);
      zero(dp);
      if constexpr (kQdoInRegisters) {
        warp_abt_reg<D, 1, kBc / 8>(sc, qf, kv.k(it & 1), kLd);
        warp_abt_reg<D, 1, kBc / 8>(dp, df, kv.v(it & 1), kLd);
      } else {
        warp_abt<D, 1, kBc / 8>(sc, q_s + 16 * warp * kLd, kLd, kv.k(it & 1), kLd);
        warp_abt<D, 1, kBc / 8>(dp, do_s + 16 * warp * kLd, kLd, kv.v(it & 1), kLd);
      }
      auto grads = [&](auto masked) {  // dS, masked only where needed (as in the dK/dV kernel)
#pragma unroll
        for (int r = 0; r < 2; ++r)
#pragma unroll
          for (int t = 0; t < kBc / 8; ++t)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              bool seen = true;
              if constexpr (decltype(masked)::value) {
                const int64_t j = k0 + 8 * t + 2 * tig + e;
                seen = valid[r] && j >= begin[r] && j <= row[r];
              }
              const float p = seen ? exp2_sfu(sc[0][t][2 * r + e] * scale_log2 - lse2[r]) : 0.0f;
              sc[0][t][2 * r + e] = p * (dp[0][t][2 * r + e] - dlt[r]);
            }
      };
      if (k0 >= warp_begin_max && k0 + kBc - 1 <= warp_row0)
        grads(std::false_type{});
      else
        grads(std::true_type{});
      warp_pv<kBc, 1, D / 8>(dq_acc, sc, kv.k(it & 1), kLd);
    }
    __syncthreads();
  }
  store_rows_bf16<D / 8>(dq, dq_acc[0], warp_row0 + grp, s.T, s.q_ld, h, dh, scale, scale);
}

template <int D, int kWarps, int kBq, bool kAtomicDq, int kMinBlocks>
void launch_dkdv(const AttentionShape& s, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                 const float* lse, const float* delta, bf16* dk, bf16* dv, float* dq_acc, cudaStream_t st) {
  using Tiles = DkdvTiles<D, kWarps, kBq, kAtomicDq>;
  const dim3 grid = heavy_first_grid<Tiles::kBc>(s);  // heavy-first (attention_tile_cuda.h)
  launch_with_smem(attention_dkdv_mma_kernel<D, kWarps, kBq, kAtomicDq, kMinBlocks>, grid, Tiles::kThreads,
                   Tiles::smem(), st, s, dout, q, k, v, lse, delta, dk, dv, dq_acc);
}

template <int D, int kWarps, int kBc, int kMinBlocks, bool kQdoInRegisters>
void launch_dq(const AttentionShape& s, const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse,
               const float* delta, bf16* dq, cudaStream_t st) {
  using Tiles = DqTiles<D, kWarps, kBc>;
  const dim3 grid(unsigned((s.T + Tiles::kBr - 1) / Tiles::kBr), unsigned(s.n));
  launch_with_smem(attention_dq_mma_kernel<D, kWarps, kBc, kMinBlocks, kQdoInRegisters>, grid, Tiles::kThreads,
                   Tiles::smem(), st, s, dout, q, k, v, lse, delta, dq);
}

// dq = bf16(scale dq_acc) over [T, n, s.D] (the fast mode's last step; attention_mma_bwd.cu).
void dq_from_acc(const AttentionShape& s, const float* dq_acc, bf16* dq, cudaStream_t st);
// delta at the front of the backward's scratch, the fast mode's dQ accumulator after it (256-byte aligned).
inline size_t delta_bytes(const AttentionShape& s) { return (size_t(s.n * s.T) * sizeof(float) + 255) / 256 * 256; }

// A tile configuration of the backward: dK/dV blocks of kDkdvWarps warps (16 keys each) stepping over kBq queries,
// dQ blocks of kDqWarps warps (16 queries each) stepping over kDqBc keys (kDqRegs: their q and dout fragments kept
// in registers); kMinBlocks, the blocks per SM asked of
// ptxas (__launch_bounds__: at most 64K / (32 warps kMinBlocks) registers per thread; 0: ptxas's choice, which
// differs from 1: 1 lets it take up to 255).
template <int kDkdvWarps_, int kBq_, int kDqWarps_, int kDqBc_, int kMinBlocks_ = 0, bool kDqRegs_ = false>
struct BwdConfig {
  static constexpr int kDkdvWarps = kDkdvWarps_, kBq = kBq_, kDqWarps = kDqWarps_, kDqBc = kDqBc_;
  static constexpr int kMinBlocks = kMinBlocks_;
  static constexpr bool kDqRegs = kDqRegs_;
  template <int D>  // the largest of the passes (the fast mode's dK/dV kernel is the larger one)
  static constexpr size_t smem() {
    return std::max(DkdvTiles<D, kDkdvWarps, kBq, true>::smem(), DqTiles<D, kDqWarps, kDqBc>::smem());
  }
};

// The passes at instantiated head dim D with configuration Cfg; dq_acc: the fast mode's fp32 accumulator, nullptr
// in the deterministic mode.
template <int D, class Cfg>
void run_bwd(const AttentionShape& s, const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse,
             const float* delta, bf16* dq, bf16* dk, bf16* dv, float* dq_acc, cudaStream_t st) {
  constexpr int kW = Cfg::kDkdvWarps, kBq = Cfg::kBq, kMin = Cfg::kMinBlocks;
  if (!dq_acc) {
    launch_dkdv<D, kW, kBq, false, kMin>(s, dout, q, k, v, lse, delta, dk, dv, nullptr, st);
    launch_dq<D, Cfg::kDqWarps, Cfg::kDqBc, kMin, Cfg::kDqRegs>(s, dout, q, k, v, lse, delta, dq, st);
    return;
  }
  QSFT_CUDA_CHECK(cudaMemsetAsync(dq_acc, 0, size_t(s.T * s.n * s.D) * sizeof(float), st));
  launch_dkdv<D, kW, kBq, true, kMin>(s, dout, q, k, v, lse, delta, dk, dv, dq_acc, st);
  dq_from_acc(s, dq_acc, dq, st);
}

// The backward's common part (attention_bwd_mma's arguments; shape already checked): delta into the scratch, then
// run(D, dout, q, k, v, lse, delta, dq, dk, dv, dq_acc) with the bf16 tensors typed and D the instantiated head dim
// that holds s.D (std::integral_constant 64 or 128); dq_acc: the fast mode's accumulator after delta (atomic_dq),
// else nullptr.
template <class Run>
void bwd_dispatch(const AttentionShape& s, const void* dout, const void* q, const void* k, const void* v,
                  const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, cudaStream_t st,
                  bool atomic_dq, Run&& run) {
  // The fast mode adds dQ with 8-byte float2 REDs (sm_90): dq_acc (scratch + a multiple of 256) must be 8-aligned.
  QSFT_CHECK(reinterpret_cast<uintptr_t>(scratch) % 16 == 0, "attention backward: scratch must be 16-byte aligned");
  float* delta = static_cast<float*>(scratch);
  float* dq_acc =
      atomic_dq ? reinterpret_cast<float*>(static_cast<unsigned char*>(scratch) + delta_bytes(s)) : nullptr;
  attention_delta(s, static_cast<const bf16*>(dout), static_cast<const bf16*>(out), delta, st);
  const auto *dob = static_cast<const bf16*>(dout), *qb = static_cast<const bf16*>(q);
  const auto *kb = static_cast<const bf16*>(k), *vb = static_cast<const bf16*>(v);
  auto *dqb = static_cast<bf16*>(dq), *dkb = static_cast<bf16*>(dk), *dvb = static_cast<bf16*>(dv);
  if (s.D <= 64)
    run(std::integral_constant<int, 64>{}, dob, qb, kb, vb, lse, delta, dqb, dkb, dvb, dq_acc);
  else
    run(std::integral_constant<int, 128>{}, dob, qb, kb, vb, lse, delta, dqb, dkb, dvb, dq_acc);
}

// The whole backward with configuration Cfg: delta, then the passes (atomic_dq: the fast mode).
template <class Cfg>
void bwd_with(const AttentionShape& s, const void* dout, const void* q, const void* k, const void* v, const void* out,
              const float* lse, void* dq, void* dk, void* dv, void* scratch, cudaStream_t st, bool atomic_dq) {
  bwd_dispatch(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, st, atomic_dq,
               [&](auto d, auto... tensors) { run_bwd<decltype(d)::value, Cfg>(s, tensors..., st); });
}

}  // namespace qsft::cuda::attn
