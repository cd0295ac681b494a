// The attention backward on Hopper's warpgroup MMA (wgmma, sm_90a; QSFT_ATTENTION=wgmma), FlashAttention-3's shape
// without its producer warpgroup: the fast mode (AttentionBwdMode::AtomicDq: dQ by fp32 atomics, 5 products) and
// the deterministic one (a dQ pass, 7 products). Why: mma.sync tops out near 100 TFLOP/s here (bench.log of the first
// H200 run: 97 at the 7B shape) while wgmma issues a 64 x N x 16 product per warpgroup from shared memory without
// ldmatrix, and the scores' accumulators become the next product's A operand in registers.
//
// One block of two warpgroups (256 threads) per (kBc = 128 keys, kv head g); warpgroup w owns keys 64 w .. 64 w + 63
// and their dK, dV [64 x D] in fp32 registers. The block walks the group's query heads and the query tiles of
// kBq = 64 that see its keys (as production's dK/dV pass: causal, packed sequences, GQA summed in registers), q and
// dout tiles in two cp.async stages, and per step and warpgroup (majorness: which dimension is contiguous in smem):
//   S^T  = K_w q^T       SS m64n64k16 x D/16: A = K_w [keys][D] K-major, B = q [queries][D] K-major
//   dP^T = V_w dout^T    SS, the same with V_w, dout
//   P^T = 2^(scale log2e S^T - log2e lse_i), dS^T = P^T (dP^T - delta_i) in registers (masked only where needed)
//   dV += P^T dout       RS m64nDk16 x 4: A = bf16(P^T) from the accumulators, B = dout [queries][D] MN-major
//   dK += dS^T q         RS, the same with dS^T, q
//   dQ_tile += dS K      SS m64n64k16: A = dS = (dS^T)^T read MN-major from dS^T staged in smem [keys][queries]
//                        bf16, B = K [keys][D] MN-major; D = 128: warpgroup w the columns 64 w.. over all 128 keys;
//                        D = 64: warpgroup w all columns over its own 64 keys; added to production's fp32 dQ
//                        accumulator by 8-byte REDs, then production's conversion (dq_from_acc).
// Every tile lives in one 128B-swizzled format (wgmma_cuda.h's Sw128) read K-major or MN-major as the product needs.
// Shared memory: K, V [128 x D], 2 stages of q, dout [64 x D], dS^T [128 x 64], lse/delta: 145 KiB at D = 128,
// 81 KiB at D = 64 (+1 KiB for 1024-byte alignment); one block per SM (registers: 2 x 128 threads x <= 255).
// Synchronization per step: cp.async wait + fence.proxy.async + barrier (stage ready, previous step's wgmmas retired
// by every warpgroup), then the prefetch of the next stage; dS^T stores + fence.proxy.async + barrier before dQ.
// Same sums as production in another order (bf16 P^T, dS^T rounded as there): the bench's differences are
// bf16-rounding small, dQ's last bits vary run to run (atomics).
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/attention_mma_bwd_cuda.h"
#include "kernels/attention_wgmma_cuda.h"

namespace qsft::cuda {
namespace {

using namespace attn;

constexpr int kBc = 128, kBq = 64, kThreads = 256;

template <int D>
struct WgTiles {
  static constexpr uint32_t kKeyBytes = kBc * D * 2;  // K or V
  static constexpr uint32_t kQBytes = kBq * D * 2;    // q or dout, one stage
  static constexpr uint32_t kK = 0, kV = kKeyBytes, kQ = 2 * kKeyBytes;  // q(st) at kQ + 2 st kQBytes, dout after it
  static constexpr uint32_t kDs = kQ + 4 * kQBytes;                     // dS^T [kBc keys][kBq queries]
  static constexpr uint32_t kStat = kDs + kBc * kBq * 2;                // lse(st) at 2 st kBq floats, delta after
  static constexpr size_t smem() { return kStat + 4 * kBq * sizeof(float) + 1024; }  // + alignment slack
  // dQ: warpgroup w's keys (A rows) and K rows start at kDqRow w, its output columns at kDqCol w.
  static constexpr int kDqKeys = D == 128 ? 128 : 64, kDqRow = D == 128 ? 0 : 64, kDqCol = D == 128 ? 64 : 0;
  static_assert(D == 64 || D == 128, "instantiated head dims");
};

// dq_acc[i, h, col0 + 8 j + 2 tig + {0, 1}] += acc[j][2 r + {0, 1}] for this thread's query rows i = q0 + 16 warp +
// grp + 8 r (below T) and columns below s.D (dq_acc [T, n, s.D]): 8-byte REDs.
__device__ __forceinline__ void dq_add(float* dq_acc, const AttentionShape& s, const float (&acc)[8][4], int64_t q0,
                                       int64_t h, int col0) {
  const int warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31, grp = lane >> 2, tig = lane & 3;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t i = q0 + 16 * warp + grp + 8 * r;
    if (i >= s.T) continue;
    float* dst = dq_acc + (i * s.n + h) * s.D + col0 + 2 * tig;  // 8-byte aligned: s.D, col0, 2 tig even
#pragma unroll
    for (int j = 0; j < 8; ++j)
      if (col0 + 8 * j < s.D)
        atomicAdd(reinterpret_cast<float2*>(dst + 8 * j), make_float2(acc[j][2 * r], acc[j][2 * r + 1]));
  }
}

// Fast mode, after this step's dS^T went to its tile: dQ_tile [64 queries x 64 columns] = dS K_block added to dq_acc.
// A = dS^T's rows (keys) read MN-major (M = queries), B = K's rows read MN-major (N = D columns); D = 128:
// warpgroup w all 128 keys, columns 64 w..; D = 64: keys 64 w.., all columns. Retires every wgmma of the warpgroup.
template <int D>
__device__ __forceinline__ void dq_tile_atomic(float* dq_acc, const AttentionShape& s, int64_t q0, int64_t h,
                                               uint32_t ds_s, uint32_t k_s) {
  using namespace wg;
  using T = WgTiles<D>;
  const int wgi = threadIdx.x >> 7;
  fence_proxy_async();
  __syncthreads();  // dS^T complete (both warpgroups) and visible to the async proxy
  float dq[8][4];   // queries 16 warp + grp (+ 8), columns kDqCol wgi + 8 j + 2 tig (+ 1)
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < T::kDqKeys / 16; ++kk) {
    const int key_row = T::kDqRow * wgi + 16 * kk;
    Wgmma<64>::ss<1, 1>(dq, desc_mn_major<kBc>(ds_s, key_row, 0), desc_mn_major<kBc>(k_s, key_row, T::kDqCol * wgi),
                        kk > 0);
  }
  wgmma_commit();
  wgmma_wait<0>();
  fence_operands(dq);
  dq_add(dq_acc, s, dq, q0, h, T::kDqCol * wgi);
}

template <int D, bool kAtomicDq>
__global__ void __launch_bounds__(kThreads, 1)
    wg_dkdv_kernel(AttentionShape s, const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse,
                  const float* delta, bf16* dk, bf16* dv, float* dq_acc) {
  using namespace wg;
  using T = WgTiles<D>;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024 - smem_u32(smem_raw) % 1024) % 1024);  // swizzle atoms 1024-aligned
  const uint32_t k_s = smem_u32(smem + T::kK), v_s = smem_u32(smem + T::kV), ds_s = smem_u32(smem + T::kDs);
  const float* stat = reinterpret_cast<const float*>(smem + T::kStat);

  const int wgi = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
  const int grp = lane >> 2, tig = lane & 3;
  static_assert(kBc * kBq * 2 >= kHeavyFirstBytes, "heavy_first_key_block's ints fit the dS^T tile");
  const int64_t k0 = int64_t(heavy_first_key_block<kBc, kBq, kThreads>(s, int(blockIdx.x),
                                                                        reinterpret_cast<int*>(smem + T::kDs))) * kBc;
  const int64_t g = blockIdx.y, group = s.n / s.nkv;
  const int dh = int(s.D);
  const float scale = rsqrtf(float(dh)), scale_log2 = scale * kLog2e;

  // This thread's two keys (accumulator rows 16 warp + grp + 8 r of its warpgroup) and their sequence ends: key j is
  // seen by queries [j, end_j). Per warp: the smallest end (0 when a key is past T: always masked).
  const int64_t warp_key0 = k0 + 64 * wgi + 16 * warp;
  int64_t key[2], end[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    key[r] = warp_key0 + grp + 8 * r;
    end[r] = key[r] < s.T ? seq_end(s, key[r]) : 0;
  }
  const int64_t warp_end_min = warp_key0 + 15 < s.T ? seq_end(s, warp_key0) : 0;

  const int64_t q_end = seq_end(s, min(k0 + kBc, s.T) - 1);  // queries [k0, q_end) see some key of the block
  const int q_tiles = int((q_end - k0 + kBq - 1) / kBq), steps = int(group) * q_tiles;
  // Query tile `tile` of head h (q, dout, lse, delta) into stage st.
  auto load_step = [&](int tile, int64_t h, int st) {
    const int64_t q0 = k0 + int64_t(tile) * kBq;
    unsigned char* q_st = smem + T::kQ + 2 * st * T::kQBytes;
    cp_async_rows_sw128<D, kBq, kThreads>(q_st, q, q0, s.T, s.q_ld, h, dh);
    cp_async_rows_sw128<D, kBq, kThreads>(q_st + T::kQBytes, dout, q0, s.T, s.n * dh, h, dh);
    float* stat_st = reinterpret_cast<float*>(smem + T::kStat) + 2 * st * kBq;
    cp_async_floats<kThreads>(stat_st, lse + h * s.T, q0, kBq, s.T);
    cp_async_floats<kThreads>(stat_st + kBq, delta + h * s.T, q0, kBq, s.T);
  };
  cp_async_rows_sw128<D, kBc, kThreads>(smem + T::kK, k, k0, s.T, s.k_ld, g, dh);
  cp_async_rows_sw128<D, kBc, kThreads>(smem + T::kV, v, k0, s.T, s.v_ld, g, dh);
  load_step(0, g * group, 0);
  cp_async_commit();

  float dk_acc[D / 8][4], dv_acc[D / 8][4];  // keys 64 wgi + 16 warp + grp (+ 8), columns 8 j + 2 tig (+ 1)
#pragma unroll
  for (int j = 0; j < D / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk_acc[j][e] = dv_acc[j][e] = 0.0f;
  int tile = 0;
  int64_t h = g * group;
  for (int it = 0; it < steps; ++it) {
    const int st = it & 1;
    const int64_t q0 = k0 + int64_t(tile) * kBq;
    const int next_tile = tile + 1 == q_tiles ? 0 : tile + 1;
    const int64_t next_h = next_tile == 0 ? h + 1 : h;
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();  // stage st ready; every warpgroup's wgmmas of step it - 1 retired (stage st ^ 1, dS^T free)
    if (it + 1 < steps) {
      load_step(next_tile, next_h, st ^ 1);
      cp_async_commit();
    }
    const uint32_t q_s = smem_u32(smem + T::kQ + 2 * st * T::kQBytes), do_s = q_s + T::kQBytes;
    const float* lse_t = stat + 2 * st * kBq;
    const float* delta_t = lse_t + kBq;

    // S^T = K_w q^T, dP^T = V_w dout^T [64 keys x 64 queries], two groups; P^T while dP^T is in flight.
    float pt[8][4], dpt[8][4];
    wgmma_fence();
    wgmma_ss_k<kBq, D, kBc, kBq, 0>(pt, k_s, 64 * wgi, q_s, 0, false);
    wgmma_commit();
    wgmma_ss_k<kBq, D, kBc, kBq, 0>(dpt, v_s, 64 * wgi, do_s, 0, false);
    wgmma_commit();
    wgmma_wait<1>();
    fence_operands(pt);
    // P^T, masked to [key, end) only where a query of the tile precedes a key of the warp or passes the first key's
    // sequence end (warp-uniform branch).
    auto probs = [&](auto masked) {
#pragma unroll
      for (int j = 0; j < 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = 8 * j + 2 * tig + (e & 1), r = e >> 1;
          bool seen = true;
          if constexpr (decltype(masked)::value) {
            const int64_t i = q0 + col;
            seen = i >= key[r] && i < end[r];
          }
          pt[j][e] = seen ? exp2_sfu(pt[j][e] * scale_log2 - lse_t[col] * kLog2e) : 0.0f;
        }
    };
    if (q0 >= warp_key0 + 15 && q0 + kBq <= warp_end_min)
      probs(std::false_type{});
    else
      probs(std::true_type{});
    wgmma_wait<0>();
    fence_operands(dpt);
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) dpt[j][e] = pt[j][e] * (dpt[j][e] - delta_t[8 * j + 2 * tig + (e & 1)]);

    if constexpr (kAtomicDq) {  // dS^T as bf16 into its tile (row = key 64 wgi + 16 warp + grp + 8 r, column = query)
#pragma unroll
      for (int j = 0; j < 8; ++j)
#pragma unroll
        for (int r = 0; r < 2; ++r)
          *reinterpret_cast<uint32_t*>(smem + T::kDs + Sw128<kBc>::offset(64 * wgi + 16 * warp + grp + 8 * r,
                                                                          8 * j + 2 * tig)) =
              pack_bf16(dpt[j][2 * r], dpt[j][2 * r + 1]);
    }

    // dV += P^T dout, dK += dS^T q: A from registers, B = the q / dout tile read MN-major (K = queries).
    uint32_t pa[kBq / 16][4], da[kBq / 16][4];
    to_a_all<kBq>(pa, pt);
    to_a_all<kBq>(da, dpt);
    fence_operands(pa);
    fence_operands(da);
    fence_operands(dv_acc);
    fence_operands(dk_acc);
    wgmma_fence();
    wgmma_rs_k<D, kBq, kBq>(dv_acc, pa, do_s, 0, true);
    wgmma_rs_k<D, kBq, kBq>(dk_acc, da, q_s, 0, true);
    wgmma_commit();

    if constexpr (kAtomicDq) dq_tile_atomic<D>(dq_acc, s, q0, h, ds_s, k_s);
    wgmma_wait<0>();  // dV, dK of this step
    fence_operands(pa);
    fence_operands(da);
    fence_operands(dv_acc);
    fence_operands(dk_acc);
    tile = next_tile;
    h = next_h;
  }
  const int64_t row_lo = warp_key0 + grp;
  store_rows_bf16<D / 8>(dk, dk_acc, row_lo, s.T, s.k_ld, g, dh, scale, scale);
  store_rows_bf16<D / 8>(dv, dv_acc, row_lo, s.T, s.v_ld, g, dh, 1.0f, 1.0f);
}

// Deterministic mode's dQ pass in the same style, query-major: one block of two warpgroups per (kDqBr = 128 queries,
// head h), warpgroup w owning queries 64 w.. and their dQ [64 x D] in fp32 registers, walking the key tiles of
// kDqBc = 64 that they see (K, V in two cp.async stages):
//   S = q_w K^T, dP = dout_w V^T     SS m64n64k16 x D/16, all K-major (P while dP is in flight)
//   P = 2^(scale log2e S - log2e lse_i), dS = P (dP - delta_i), the row statistics in registers
//   dQ += dS K                        RS m64nDk16 x 4: A = bf16(dS) from the accumulators, B = K [keys][D] MN-major
// Shared memory: q, dout [128 x D], two stages of K, V [64 x D]: 128 KiB at D = 128, 64 KiB at D = 64.
constexpr int kDqBr = 128, kDqBc = 64;

template <int D>
struct WgDqTiles {
  static constexpr uint32_t kQBytes = kDqBr * D * 2, kKvBytes = kDqBc * D * 2;
  static constexpr uint32_t kQ = 0, kDo = kQBytes, kKv = 2 * kQBytes;  // k(st) at kKv + 2 st kKvBytes, v after it
  static constexpr size_t smem() { return kKv + 4 * kKvBytes + 1024; }  // + alignment slack
};

template <int D>
__global__ void __launch_bounds__(kThreads, 1)
    wg_dq_kernel(AttentionShape s, const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse,
                 const float* delta, bf16* dq) {
  using namespace wg;
  using T = WgDqTiles<D>;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024 - smem_u32(smem_raw) % 1024) % 1024);  // swizzle atoms 1024-aligned
  const uint32_t q_s = smem_u32(smem + T::kQ), do_s = smem_u32(smem + T::kDo);

  const int wgi = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
  const int grp = lane >> 2, tig = lane & 3;
  const int64_t q0 = int64_t(gridDim.x - 1 - blockIdx.x) * kDqBr, h = blockIdx.y, g = h / (s.n / s.nkv);
  const int dh = int(s.D);
  const float scale = rsqrtf(float(dh)), scale_log2 = scale * kLog2e;

  // This thread's two query rows (accumulator rows 16 warp + grp + 8 r of its warpgroup): row i sees keys
  // [begin_i, i] (none past T); log2e lse_i, delta_i. Per warp: the largest begin (T when a row is past T: masked).
  const int64_t warp_row0 = q0 + 64 * wgi + 16 * warp;
  int64_t row[2], begin[2];
  float lse2[2], dlt[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row[r] = warp_row0 + grp + 8 * r;
    const bool valid = row[r] < s.T;
    begin[r] = valid ? seq_begin(s, row[r]) : INT64_MAX;
    lse2[r] = valid ? lse[h * s.T + row[r]] * kLog2e : 0.0f;
    dlt[r] = valid ? delta[h * s.T + row[r]] : 0.0f;
  }
  const int64_t warp_begin_max = warp_row0 + 15 < s.T ? seq_begin(s, warp_row0 + 15) : s.T;
  const int64_t k_first = seq_begin(s, q0), k_last = min(q0 + kDqBr, s.T) - 1;
  const int tiles = int((k_last - k_first) / kDqBc) + 1;
  auto load_kv = [&](int64_t k0, int st) {
    unsigned char* kv = smem + T::kKv + 2 * st * T::kKvBytes;
    cp_async_rows_sw128<D, kDqBc, kThreads>(kv, k, k0, s.T, s.k_ld, g, dh);
    cp_async_rows_sw128<D, kDqBc, kThreads>(kv + T::kKvBytes, v, k0, s.T, s.v_ld, g, dh);
  };
  cp_async_rows_sw128<D, kDqBr, kThreads>(smem + T::kQ, q, q0, s.T, s.q_ld, h, dh);
  cp_async_rows_sw128<D, kDqBr, kThreads>(smem + T::kDo, dout, q0, s.T, s.n * dh, h, dh);
  load_kv(k_first, 0);
  cp_async_commit();

  float acc[D / 8][4];  // dQ: queries 64 wgi + 16 warp + grp (+ 8), columns 8 j + 2 tig (+ 1)
#pragma unroll
  for (int j = 0; j < D / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[j][e] = 0.0f;
  for (int it = 0; it < tiles; ++it) {
    const int st = it & 1;
    const int64_t k0 = k_first + int64_t(it) * kDqBc;
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();  // stage st ready; every warpgroup's wgmmas of step it - 1 retired (stage st ^ 1 free)
    if (it + 1 < tiles) {
      load_kv(k0 + kDqBc, st ^ 1);
      cp_async_commit();
    }
    const uint32_t k_s = smem_u32(smem + T::kKv + 2 * st * T::kKvBytes), v_s = k_s + T::kKvBytes;
    float sc[8][4], dp[8][4];  // S -> P -> dS, dP: [64 queries x 64 keys] per warpgroup
    wgmma_fence();
    wgmma_ss_k<kDqBc, D, kDqBr, kDqBc, 0>(sc, q_s, 64 * wgi, k_s, 0, false);
    wgmma_commit();
    wgmma_ss_k<kDqBc, D, kDqBr, kDqBc, 0>(dp, do_s, 64 * wgi, v_s, 0, false);
    wgmma_commit();
    wgmma_wait<1>();
    fence_operands(sc);
    auto probs = [&](auto masked) {  // masked only on tiles that straddle the diagonal or a sequence start
#pragma unroll
      for (int j = 0; j < 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = e >> 1;
          bool seen = true;
          if constexpr (decltype(masked)::value) {
            const int64_t key = k0 + 8 * j + 2 * tig + (e & 1);
            seen = key >= begin[r] && key <= row[r];
          }
          sc[j][e] = seen ? exp2_sfu(sc[j][e] * scale_log2 - lse2[r]) : 0.0f;
        }
    };
    if (k0 >= warp_begin_max && k0 + kDqBc - 1 <= warp_row0)
      probs(std::false_type{});
    else
      probs(std::true_type{});
    wgmma_wait<0>();
    fence_operands(dp);
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) sc[j][e] *= dp[j][e] - dlt[e >> 1];
    uint32_t da[kDqBc / 16][4];
    to_a_all<kDqBc>(da, sc);
    fence_operands(da);
    fence_operands(acc);
    wgmma_fence();
    wgmma_rs_k<D, kDqBc, kDqBc>(acc, da, k_s, 0, true);
    wgmma_commit();
    wgmma_wait<0>();  // before the next step's barrier: its prefetch overwrites this K stage
    fence_operands(da);
    fence_operands(acc);
  }
  store_rows_bf16<D / 8>(dq, acc, warp_row0 + grp, s.T, s.q_ld, h, dh, scale, scale);
}

// dq_acc: the fast mode's fp32 accumulator [T, n, s.D], nullptr in the deterministic mode.
template <int D, bool kAtomicDq>
void run(const AttentionShape& s, const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse,
         const float* delta, bf16* dq, bf16* dk, bf16* dv, float* dq_acc, cudaStream_t st) {
  if constexpr (kAtomicDq) QSFT_CUDA_CHECK(cudaMemsetAsync(dq_acc, 0, size_t(s.T * s.n * s.D) * sizeof(float), st));
  const dim3 grid = heavy_first_grid<kBc>(s);  // heavy_first_key_block maps them
  launch_with_smem(wg_dkdv_kernel<D, kAtomicDq>, grid, kThreads, WgTiles<D>::smem(), st, s, dout, q, k, v, lse, delta,
                   dk, dv, dq_acc);
  if constexpr (kAtomicDq) {
    dq_from_acc(s, dq_acc, dq, st);
  } else {
    const dim3 dq_grid(unsigned((s.T + kDqBr - 1) / kDqBr), unsigned(s.n));
    launch_with_smem(wg_dq_kernel<D>, dq_grid, kThreads, WgDqTiles<D>::smem(), st, s, dout, q, k, v, lse, delta, dq);
  }
}

// scratch: delta, then (fast mode) the fp32 dQ accumulator, as the mma path's (attention_bwd_scratch_bytes).
template <bool kAtomicDq>
void bwd_wg(const AttentionShape& shape, const void* dout, const void* q, const void* k, const void* v,
            const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream) {
  if (shape.T == 0) return;
  if (const std::string why = attention_wgmma_unsupported_reason("attention_bwd_wgmma"); !why.empty())
    throw std::runtime_error(why);
  const AttentionShape s = check_shape(shape, {dout, q, k, v, out, dq, dk, dv});
  QSFT_CHECK(attention_supports_head_dim(s.D),
             "attention_bwd_wgmma: head_dim " + std::to_string(s.D) + " is not a multiple of 8 in [8, 128]");
  const cudaStream_t st = as_stream(stream);
  bwd_dispatch(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, st, kAtomicDq,
               [&](auto d, auto... tensors) { run<decltype(d)::value, kAtomicDq>(s, tensors..., st); });
}

}  // namespace

void attention_bwd_wgmma(const AttentionShape& s, const void* dout, const void* q, const void* k, const void* v,
                         const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream,
                         AttentionBwdMode mode) {
  if (mode == AttentionBwdMode::Auto) mode = attention_bwd_mode_from_env();
  if (mode == AttentionBwdMode::AtomicDq)
    bwd_wg<true>(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, stream);
  else
    bwd_wg<false>(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, stream);
}

}  // namespace qsft::cuda
