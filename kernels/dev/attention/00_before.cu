// Variant 00: the mma.sync kernels as they were at 4a2ff4c (the first H200 run: forward 176 / backward 97 TFLOP/s at
// D = 128 with Large tiles, 119 / 73 with Small at D = 64), before the production ones (kernels/attention_mma*)
// gained padded head dims, the fixed-step cp.async loads, the mask on only the tiles that need it and the counted
// dK/dV steps; kept so that the next GPU run measures old and new side by side (kernels/dev/README.md). Head dims
// 64 and 128 only (others fall back to the production launcher). Delete once bench/RESULTS.md has the numbers.
#include <cmath>

#include "kernels/attention_mma_cuda.h"
#include "kernels/dev/attention/variants.h"

namespace qsft::dev {
namespace {
namespace before {

using namespace cuda;
using namespace cuda::attn;

template <int D, int kThreads>
__device__ __forceinline__ void cp_async_rows(bf16* dst, const bf16* src, int64_t row0, int rows, int64_t T, int64_t ld,
                                              int64_t head) {
  constexpr int kVecs = D / 8;
  for (int v = threadIdx.x; v < rows * kVecs; v += kThreads) {
    const int r = v / kVecs, c = (v % kVecs) * 8;
    const int64_t t = row0 + r;
    const bool ok = t < T;
    cp_async16(dst + r * kLdm<D> + c, ok ? src + t * ld + head * D + c : src, ok);
  }
}

template <int D, int kBc, int kThreads>
struct KvStages {
  bf16* base;
  __device__ bf16* k(int st) const { return base + size_t(2 * st) * kBc * kLdm<D>; }
  __device__ bf16* v(int st) const { return base + size_t(2 * st + 1) * kBc * kLdm<D>; }
  // Rows row0.. of kv head g of k and v [T, nkv, D] (row strides s.k_ld, s.v_ld) into stage st (asynchronous).
  __device__ void load(int st, const bf16* k_g, const bf16* v_g, int64_t row0, const AttentionShape& s,
                       int64_t g) const {
    cp_async_rows<D, kThreads>(k(st), k_g, row0, kBc, s.T, s.k_ld, g);
    cp_async_rows<D, kThreads>(v(st), v_g, row0, kBc, s.T, s.v_ld, g);
  }
};

template <int NT>
__device__ __forceinline__ void store_rows_bf16(bf16* dst, const float (&c)[NT][4], int64_t row_lo, int64_t T,
                                                int64_t ld, int64_t head, float mul_lo, float mul_hi) {
  const int tig = threadIdx.x & 3;
  constexpr int D = NT * 8;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t row = row_lo + 8 * half;
    if (row >= T) continue;
    const float mul = half ? mul_hi : mul_lo;
    uint32_t* out = reinterpret_cast<uint32_t*>(dst + row * ld + head * D + 2 * tig);
#pragma unroll
    for (int t = 0; t < NT; ++t) out[t * 4] = pack_bf16(c[t][2 * half] * mul, c[t][2 * half + 1] * mul);
  }
}

template <int D, int kWarps, int kRowTiles, int kBc>
struct FwdTiles {
  static constexpr int kWarpRows = 16 * kRowTiles, kBr = kWarpRows * kWarps, kThreads = 32 * kWarps;
  static constexpr size_t kQBytes = size_t(kBr) * kLdm<D> * sizeof(bf16);
  static constexpr size_t kKvBytes = size_t(kBc) * kLdm<D> * sizeof(bf16);  // one K or V tile
  static constexpr size_t smem() { return kQBytes + 4 * kKvBytes; }         // q + 2 stages x (k, v)
};

template <int D, int kWarps, int kRowTiles, int kBc>
__global__ void __launch_bounds__(32 * kWarps)
    attention_fwd_mma_kernel(AttentionShape s, const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse) {
  using Tiles = FwdTiles<D, kWarps, kRowTiles, kBc>;
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
  const float scale_log2 = rsqrtf(float(D)) * kLog2e;

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

  const int64_t k_first = seq_begin(s, q0), k_last = min(q0 + kBr, s.T) - 1;
  const int tiles = int((k_last - k_first) / kBc) + 1;

  cp_async_rows<D, kThreads>(q_s, q, q0, kBr, s.T, s.q_ld, h);
  kv.load(0, k, v, k_first, s, g);
  cp_async_commit();
  cp_async_wait<0>();
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
    pipeline_wait(it, tiles, [&](int st) { kv.load(st, k, v, k0 + kBc, s, g); });  // tile it in shared memory
    // Warps whose rows see none of these keys (all before k0, or all in later sequences) skip the tile: exact,
    // since every p would be 0 and m unchanged.
    if (warp_row0 < s.T && warp_last >= k0 && warp_begin <= k0 + kBc - 1) {
      float sc[RT][kBc / 8][4];
      zero(sc);
      if constexpr (kQInRegisters)
        warp_abt_reg<D, RT, kBc / 8>(sc, qf, kv.k(it & 1), kLd);
      else
        warp_abt<D, RT, kBc / 8>(sc, q_w, kLd, kv.k(it & 1), kLd);
#pragma unroll
      for (int m = 0; m < RT; ++m)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          // No mask needed when every key of the tile is in [begin, row] (row < T then covers the tail).
          const bool full = valid[m][r] && k0 >= begin[m][r] && k0 + kBc - 1 <= row[m][r];
          float tile_max = -INFINITY;
#pragma unroll
          for (int t = 0; t < kBc / 8; ++t)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int64_t j = k0 + 8 * t + 2 * tig + e;
              float x = sc[m][t][2 * r + e] * scale_log2;
              if (!full) x = valid[m][r] && j >= begin[m][r] && j <= row[m][r] ? x : -INFINITY;
              sc[m][t][2 * r + e] = x;
              tile_max = fmaxf(tile_max, x);
            }
          const float m_new = fmaxf(m_run[m][r], quad_max(tile_max));
          const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing visible yet: p = 0
          const float alpha = exp2f(m_run[m][r] - m_use);
          m_run[m][r] = m_new;
          float sum = 0.0f;
#pragma unroll
          for (int t = 0; t < kBc / 8; ++t)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const float p = exp2f(sc[m][t][2 * r + e] - m_use);
              sc[m][t][2 * r + e] = p;
              sum += p;  // fp32 p (not its bf16 rounding): lse stays the exact log-sum-exp
            }
          l[m][r] = l[m][r] * alpha + sum;
#pragma unroll
          for (int t = 0; t < D / 8; ++t) {
            o[m][t][2 * r] *= alpha;
            o[m][t][2 * r + 1] *= alpha;
          }
        }
      warp_pv<kBc, RT, D / 8>(o, sc, kv.v(it & 1), kLd);
    }
    __syncthreads();  // every warp is done with stage it & 1 before iteration it + 1 prefetches into it
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
    store_rows_bf16<D / 8>(out, o[m], warp_row0 + 16 * m + grp, s.T, s.n * D, h, inv_l[0], inv_l[1]);
  }
}

template <int D, int kWarps, int kRowTiles, int kBc>
void launch_fwd_mma(const AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse,
                    void* stream) {
  using Tiles = FwdTiles<D, kWarps, kRowTiles, kBc>;
  const dim3 grid(unsigned((s.T + Tiles::kBr - 1) / Tiles::kBr), unsigned(s.n));
  launch_with_smem(attention_fwd_mma_kernel<D, kWarps, kRowTiles, kBc>, grid, Tiles::kThreads, Tiles::smem(),
                   as_stream(stream), s, static_cast<const bf16*>(q), static_cast<const bf16*>(k),
                   static_cast<const bf16*>(v), static_cast<bf16*>(out), lse);
}

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

// dq_acc[q0 + i, h, :] += dS [kBq x kBc] K_block, this warp's [16 x kCols] slab; ds_s holds dS^T (key-major).
template <int D, int kWarps, int kBq>
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
    float* dst = dq_acc + (i * s.n + h) * D + col0 + 2 * tig;
#pragma unroll
    for (int t = 0; t < kCols / 8; ++t) {
      atomicAdd(dst + 8 * t, acc[0][t][2 * r]);
      atomicAdd(dst + 8 * t + 1, acc[0][t][2 * r + 1]);
    }
  }
}

template <int D, int kWarps, int kBq, bool kAtomicDq>
__global__ void __launch_bounds__(32 * kWarps)
    attention_dkdv_mma_kernel(AttentionShape s, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                              const float* lse, const float* delta, bf16* dk, bf16* dv, float* dq_acc) {
  using Tiles = DkdvTiles<D, kWarps, kBq, kAtomicDq>;
  constexpr int kBc = Tiles::kBc, kThreads = Tiles::kThreads, kLd = kLdm<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* k_s = reinterpret_cast<bf16*>(smem);
  bf16* v_s = reinterpret_cast<bf16*>(smem + Tiles::kKeyBytes);
  bf16* qdo_s = reinterpret_cast<bf16*>(smem + 2 * Tiles::kKeyBytes);  // stage st: q at 2 st, dout at 2 st + 1
  float* stat_s = reinterpret_cast<float*>(smem + 2 * Tiles::kKeyBytes + 4 * Tiles::kQBytes);  // lse, delta
  bf16* ds_s = reinterpret_cast<bf16*>(smem + 2 * Tiles::kKeyBytes + 4 * Tiles::kQBytes + Tiles::kStatBytes);
  auto q_stage = [&](int st) { return qdo_s + size_t(2 * st) * kBq * kLd; };
  auto do_stage = [&](int st) { return qdo_s + size_t(2 * st + 1) * kBq * kLd; };
  auto lse_stage = [&](int st) { return stat_s + (2 * st) * kBq; };
  auto delta_stage = [&](int st) { return stat_s + (2 * st + 1) * kBq; };

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, grp = lane >> 2, tig = lane & 3;
  const int64_t k0 = int64_t(blockIdx.x) * kBc, g = blockIdx.y, group = s.n / s.nkv;
  const float scale = rsqrtf(float(D)), scale_log2 = scale * kLog2e;

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

  const int64_t q_end = seq_end(s, min(k0 + kBc, s.T) - 1);  // queries [k0, q_end) see some key of the block
  const int q_tiles = int((q_end - k0 + kBq - 1) / kBq), steps = int(group) * q_tiles;
  auto load_step = [&](int it, int st) {  // query tile it % q_tiles of head g group + it / q_tiles
    const int64_t q0 = k0 + int64_t(it % q_tiles) * kBq, h = g * group + it / q_tiles;
    cp_async_rows<D, kThreads>(q_stage(st), q, q0, kBq, s.T, s.q_ld, h);
    cp_async_rows<D, kThreads>(do_stage(st), dout, q0, kBq, s.T, s.n * D, h);
    cp_async_floats<kThreads>(lse_stage(st), lse + h * s.T, q0, kBq, s.T);
    cp_async_floats<kThreads>(delta_stage(st), delta + h * s.T, q0, kBq, s.T);
  };

  cp_async_rows<D, kThreads>(k_s, k, k0, kBc, s.T, s.k_ld, g);
  cp_async_rows<D, kThreads>(v_s, v, k0, kBc, s.T, s.v_ld, g);
  load_step(0, 0);
  cp_async_commit();

  float dk_acc[1][D / 8][4], dv_acc[1][D / 8][4];  // [one row tile of 16 keys]
  zero(dk_acc);
  zero(dv_acc);
  for (int it = 0; it < steps; ++it) {
    const int st = it & 1;
    const int64_t q0 = k0 + int64_t(it % q_tiles) * kBq;
    [[maybe_unused]] const int64_t h = g * group + it / q_tiles;
    pipeline_wait(it, steps, [&](int next) { load_step(it + 1, next); });
    float pt[1][kBq / 8][4], dst[1][kBq / 8][4];  // S^T -> P^T, dP^T -> dS^T: [16 keys x kBq queries]
    zero(pt);
    zero(dst);
    // Skip when no query of the tile sees a key of the warp (all queries before its keys, or past their ends).
    if (warp_key0 < s.T && q0 + kBq - 1 >= warp_key0 && q0 < warp_end) {
      warp_abt<D, 1, kBq / 8>(pt, k_s + 16 * warp * kLd, kLd, q_stage(st), kLd);
      warp_abt<D, 1, kBq / 8>(dst, v_s + 16 * warp * kLd, kLd, do_stage(st), kLd);
      const float* lse_t = lse_stage(st);
      const float* delta_t = delta_stage(st);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const bool full = valid[r] && q0 >= key[r] && q0 + kBq <= end[r];
#pragma unroll
        for (int t = 0; t < kBq / 8; ++t)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int col = 8 * t + 2 * tig + e;
            const int64_t i = q0 + col;
            const bool seen = full || (valid[r] && i >= key[r] && i < end[r]);
            const float p = seen ? exp2f(pt[0][t][2 * r + e] * scale_log2 - lse_t[col] * kLog2e) : 0.0f;
            pt[0][t][2 * r + e] = p;
            dst[0][t][2 * r + e] = p * (dst[0][t][2 * r + e] - delta_t[col]);
          }
      }
      warp_pv<kBq, 1, D / 8>(dv_acc, pt, do_stage(st), kLd);
      warp_pv<kBq, 1, D / 8>(dk_acc, dst, q_stage(st), kLd);
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
  }
  store_rows_bf16<D / 8>(dk, dk_acc[0], warp_key0 + grp, s.T, s.k_ld, g, scale, scale);
  store_rows_bf16<D / 8>(dv, dv_acc[0], warp_key0 + grp, s.T, s.v_ld, g, 1.0f, 1.0f);
}

template <int D, int kWarps, int kBc>
struct DqTiles {
  static constexpr int kBr = 16 * kWarps, kThreads = 32 * kWarps;
  static constexpr size_t kQBytes = size_t(kBr) * kLdm<D> * sizeof(bf16);   // q or dout
  static constexpr size_t kKvBytes = size_t(kBc) * kLdm<D> * sizeof(bf16);  // k or v, one stage
  static constexpr size_t smem() { return 2 * kQBytes + 4 * kKvBytes; }
};

template <int D, int kWarps, int kBc>
__global__ void __launch_bounds__(32 * kWarps)
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
  const float scale = rsqrtf(float(D)), scale_log2 = scale * kLog2e;

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
  const int64_t k_first = seq_begin(s, q0), k_last = min(q0 + kBr, s.T) - 1;
  const int tiles = int((k_last - k_first) / kBc) + 1;

  cp_async_rows<D, kThreads>(q_s, q, q0, kBr, s.T, s.q_ld, h);
  cp_async_rows<D, kThreads>(do_s, dout, q0, kBr, s.T, s.n * D, h);
  kv.load(0, k, v, k_first, s, g);
  cp_async_commit();

  float dq_acc[1][D / 8][4];  // [one row tile of 16 queries]
  zero(dq_acc);
  for (int it = 0; it < tiles; ++it) {
    const int64_t k0 = k_first + int64_t(it) * kBc;
    pipeline_wait(it, tiles, [&](int st) { kv.load(st, k, v, k0 + kBc, s, g); });
    if (warp_row0 < s.T && warp_last >= k0 && warp_begin <= k0 + kBc - 1) {
      float sc[1][kBc / 8][4], dp[1][kBc / 8][4];  // S -> P -> dS, dP: [16 queries x kBc keys]
      zero(sc);
      zero(dp);
      warp_abt<D, 1, kBc / 8>(sc, q_s + 16 * warp * kLd, kLd, kv.k(it & 1), kLd);
      warp_abt<D, 1, kBc / 8>(dp, do_s + 16 * warp * kLd, kLd, kv.v(it & 1), kLd);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const bool full = valid[r] && k0 >= begin[r] && k0 + kBc - 1 <= row[r];
#pragma unroll
        for (int t = 0; t < kBc / 8; ++t)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int64_t j = k0 + 8 * t + 2 * tig + e;
            const bool seen = full || (valid[r] && j >= begin[r] && j <= row[r]);
            const float p = seen ? exp2f(sc[0][t][2 * r + e] * scale_log2 - lse2[r]) : 0.0f;
            sc[0][t][2 * r + e] = p * (dp[0][t][2 * r + e] - dlt[r]);
          }
      }
      warp_pv<kBc, 1, D / 8>(dq_acc, sc, kv.k(it & 1), kLd);
    }
    __syncthreads();
  }
  store_rows_bf16<D / 8>(dq, dq_acc[0], warp_row0 + grp, s.T, s.q_ld, h, scale, scale);
}

template <int D, int kWarps, int kBq, bool kAtomicDq>
void launch_dkdv(const AttentionShape& s, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                 const float* lse, const float* delta, bf16* dk, bf16* dv, float* dq_acc, cudaStream_t st) {
  using Tiles = DkdvTiles<D, kWarps, kBq, kAtomicDq>;
  const dim3 grid(unsigned((s.T + Tiles::kBc - 1) / Tiles::kBc), unsigned(s.nkv));
  launch_with_smem(attention_dkdv_mma_kernel<D, kWarps, kBq, kAtomicDq>, grid, Tiles::kThreads, Tiles::smem(), st, s,
                   dout, q, k, v, lse, delta, dk, dv, dq_acc);
}

// dq = bf16(scale dq_acc), element-wise over [T, n, D]: dq_acc packed (rows of `row` = n D), dq rows ld apart.
__global__ void dq_from_acc_kernel(const float* dq_acc, int64_t count, int64_t row, int64_t ld, float scale, bf16* dq) {
  QSFT_GRID_STRIDE(i, count) dq[i / row * ld + i % row] = __float2bfloat16_rn(dq_acc[i] * scale);
}
template <int D, int kWarps, int kBc>
void launch_dq(const AttentionShape& s, const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse,
               const float* delta, bf16* dq, cudaStream_t st) {
  using Tiles = DqTiles<D, kWarps, kBc>;
  const dim3 grid(unsigned((s.T + Tiles::kBr - 1) / Tiles::kBr), unsigned(s.n));
  launch_with_smem(attention_dq_mma_kernel<D, kWarps, kBc>, grid, Tiles::kThreads, Tiles::smem(), st, s, dout, q, k, v,
                   lse, delta, dq);
}

// The tile configurations: Large for GPUs with ~227 KiB of shared memory per block (H100/H200, A100's 163 KiB),
// Small within 99 KiB (sm_86/89). dK/dV: <D, warps, kBq>; dQ: <D, warps, kBc>. dq_acc: the fast mode's fp32
// accumulator, nullptr in the deterministic mode.
template <int D, bool kLarge>
void run_bwd(const AttentionShape& s, const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse,
             const float* delta, bf16* dq, bf16* dk, bf16* dv, float* dq_acc, cudaStream_t st) {
  constexpr int kDkdvWarps = kLarge ? 8 : 4;
  if (!dq_acc) {
    launch_dkdv<D, kDkdvWarps, 32, false>(s, dout, q, k, v, lse, delta, dk, dv, nullptr, st);
    launch_dq<D, 4, kLarge ? 64 : 32>(s, dout, q, k, v, lse, delta, dq, st);
    return;
  }
  const int64_t count = s.T * s.n * D;
  QSFT_CUDA_CHECK(cudaMemsetAsync(dq_acc, 0, size_t(count) * sizeof(float), st));
  launch_dkdv<D, kDkdvWarps, 32, true>(s, dout, q, k, v, lse, delta, dk, dv, dq_acc, st);
  dq_from_acc_kernel<<<grid_for(count), kThreads, 0, st>>>(dq_acc, count, s.n * D, s.q_ld, 1.0f / std::sqrt(float(D)),
                                                           dq);
  QSFT_CUDA_CHECK_LAUNCH();
}



}  // namespace before

using namespace cuda;
using namespace cuda::attn;

template <bool kLarge>
void fwd_before(const AttentionShape& shape, const void* q, const void* k, const void* v, void* out, float* lse,
                void* stream) {
  if (shape.T == 0) return;
  constexpr AttentionTiles kTiles = kLarge ? AttentionTiles::Large : AttentionTiles::Small;
  if (shape.D != 64 && shape.D != 128) return attention_fwd_mma(shape, q, k, v, out, lse, stream, kTiles);
  const AttentionShape s = check_shape(shape, {q, k, v, out});
  constexpr int kWarps = kLarge ? 8 : 4;
  if (s.D == 64)
    before::launch_fwd_mma<64, kWarps, 1, 64>(s, q, k, v, out, lse, stream);
  else
    before::launch_fwd_mma<128, kWarps, 1, 64>(s, q, k, v, out, lse, stream);
}

template <bool kLarge>  // the deterministic backward
void bwd_before(const AttentionShape& shape, const void* dout, const void* q, const void* k, const void* v,
                const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream) {
  if (shape.T == 0) return;
  constexpr AttentionTiles kTiles = kLarge ? AttentionTiles::Large : AttentionTiles::Small;
  if (shape.D != 64 && shape.D != 128)
    return attention_bwd_mma(shape, dout, q, k, v, out, lse, dq, dk, dv, scratch, stream, kTiles,
                             AttentionBwdMode::Deterministic);
  const AttentionShape s = check_shape(shape, {dout, q, k, v, out, dq, dk, dv});
  const cudaStream_t st = as_stream(stream);
  float* delta = static_cast<float*>(scratch);
  attention_delta(s, static_cast<const bf16*>(dout), static_cast<const bf16*>(out), delta, st);
  const auto *dob = static_cast<const bf16*>(dout), *qb = static_cast<const bf16*>(q);
  const auto *kb = static_cast<const bf16*>(k), *vb = static_cast<const bf16*>(v);
  auto *dqb = static_cast<bf16*>(dq), *dkb = static_cast<bf16*>(dk), *dvb = static_cast<bf16*>(dv);
  if (s.D == 64)
    before::run_bwd<64, kLarge>(s, dob, qb, kb, vb, lse, delta, dqb, dkb, dvb, nullptr, st);
  else
    before::run_bwd<128, kLarge>(s, dob, qb, kb, vb, lse, delta, dqb, dkb, dvb, nullptr, st);
}

}  // namespace

void attention_fwd_dev00_large(const cuda::AttentionShape& s, const void* q, const void* k, const void* v, void* out,
                               float* lse, void* stream) {
  fwd_before<true>(s, q, k, v, out, lse, stream);
}
void attention_fwd_dev00_small(const cuda::AttentionShape& s, const void* q, const void* k, const void* v, void* out,
                               float* lse, void* stream) {
  fwd_before<false>(s, q, k, v, out, lse, stream);
}
void attention_bwd_dev00_large(const cuda::AttentionShape& s, const void* dout, const void* q, const void* k,
                               const void* v, const void* out, const float* lse, void* dq, void* dk, void* dv,
                               void* scratch, void* stream) {
  bwd_before<true>(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, stream);
}
void attention_bwd_dev00_small(const cuda::AttentionShape& s, const void* dout, const void* q, const void* k,
                               const void* v, const void* out, const float* lse, void* dq, void* dk, void* dv,
                               void* scratch, void* stream) {
  bwd_before<false>(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, stream);
}

}  // namespace qsft::dev
