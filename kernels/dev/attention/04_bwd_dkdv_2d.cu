// Variant 04 of the attention backward: the dK/dV pass with FlashAttention-2's block shape and two-dimensional warp
// tiles, with production's dQ pass (Small; 04a, 04b), with dQ by atomics from its staged dS (04c, the fast mode's 5
// products) or with a dQ pass of the same shape (04d, dq_2d_kernel below: the deterministic 7 products). Why: the
// production dK/dV kernel gives each warp 16 keys and all D columns of their dK, dV, so every q / dout fragment it
// loads from shared memory feeds one MMA row tile: per (warp, 32-query step) 128 HMMA, 80 LDSM and 723 SASS
// instructions in the loop (sm_90, D = 128: 5.6 per HMMA), and with 64 keys per block (Small) the q / dout tiles
// come from L2 once per 64 keys.
// Here a block of 2 kKeyWarps warps owns kBc = 32 kKeyWarps keys of kv head g (04a: 8 warps, 128 keys; 04b: 4 warps,
// 64 keys) and steps over 64 queries at a time (q, dout, lse, delta in two cp.async stages, as in production):
//   S^T = K q^T and dP^T = V dout^T [kBc keys x 64 queries]: warp w computes the 32 x 32 tile (keys 32 (w % kKeyWarps),
//     queries 32 (w / kKeyWarps)), 4 LDSM per 8 HMMA (production: 3 per 4), then P^T and dS^T = P^T (dP^T - delta)
//     (masked only on tiles that straddle the diagonal or a sequence start) go to shared memory as bf16;
//   dV += P^T dout and dK += dS^T q [kBc keys x D]: warp w owns keys 32 (w % kKeyWarps) and columns D/2
//     (w / kKeyWarps) of both, A fragments from the P^T / dS^T tiles, 6 LDSM per 16 HMMA (production: 8 per 16).
// Per warp and step: 256 HMMA, 112 LDSM, 3 block barriers (production: 128, 80, 2); ptxas (sm_90): 255 registers
// at D = 128 and 240 at D = 64, no spills; the loop 1295 SASS instructions at D = 128 (5.1 per HMMA, both mask
// copies counted). 04a reads q / dout from L2 once per 128 keys (half of production's bytes per FLOP).
// Shared memory: K, V [kBc x D], two stages of q, dout [64 x D], P^T and dS^T [kBc x 64] bf16. 04a: 173 KiB at
// D = 128, 109 KiB at D = 64, one block (8 warps) per SM; 04b: 121 / 73 KiB, one block (4 warps) per SM at D = 128,
// two at D = 64 (registers). H100/H200/A100 only (the 99 KiB GPUs keep the production kernel).
// Same sums as production in another order (bf16 P^T and dS^T rounded the same way, another MMA tiling of the
// reductions over queries): the bench's |dk-first| and |dv-first| are bf16-rounding small, not 0.
#include <cstdint>

#include "kernels/attention_mma_bwd_cuda.h"
#include "kernels/dev/attention/variants.h"

namespace qsft::dev {
namespace {

using namespace cuda::attn;
using cuda::AttentionShape;
using cuda::bf16;

constexpr int kBq = 64;
constexpr int kLdP = kBq + 8;  // P^T / dS^T rows (bf16): 16 bytes of padding, as kLdm

// kKeyWarps x 2 warps over kBc = 32 kKeyWarps keys (04a: 4 -> 8 warps, 128 keys; 04b: 2 -> 4 warps, 64 keys).
template <int D, int kKeyWarps>
struct Tiles2d {
  static constexpr int kBc = 32 * kKeyWarps, kThreads = 64 * kKeyWarps;
  static constexpr size_t kKeyBytes = size_t(kBc) * kLdm<D> * sizeof(bf16);  // k or v
  static constexpr size_t kQBytes = size_t(kBq) * kLdm<D> * sizeof(bf16);    // q or dout, one stage
  static constexpr size_t kStatBytes = 4 * kBq * sizeof(float);              // lse, delta, two stages
  static constexpr size_t kPBytes = size_t(kBc) * kLdP * sizeof(bf16);       // P^T or dS^T
  static constexpr size_t smem() { return 2 * kKeyBytes + 4 * kQBytes + kStatBytes + 2 * kPBytes; }
};

// acc [16 RT x 8 NT] += A X with A [16 RT x K] row-major in shared memory at a (stride lda) and X [K rows][8 NT]
// at x (row-major, stride ldx): P^T dout and dS^T q from the staged tiles.
template <int K, int RT, int NT>
__device__ __forceinline__ void warp_ab(float (&acc)[RT][NT][4], const bf16* a, int lda, const bf16* x, int ldx) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    uint32_t af[RT][4];
#pragma unroll
    for (int m = 0; m < RT; ++m) load_a(af[m], a + 16 * m * lda + kk * 16, lda);
    mma_step_ab(acc, af, x + kk * 16 * ldx, ldx);
  }
}

// f(m, r, t, e) for every element of a warp's 32 x 32 accumulator tile c[m][t][2 r + e]: row 16 m + grp + 8 r,
// column 8 t + 2 tig + e.
template <class F>
__device__ __forceinline__ void for_tile_32x32(F&& f) {
#pragma unroll
  for (int m = 0; m < 2; ++m)
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int t = 0; t < 4; ++t)
#pragma unroll
        for (int e = 0; e < 2; ++e) f(m, r, t, e);
}

// A warp's 32 x 32 accumulator tile as bf16 at rows row0.., columns col0.. of x [rows][kLdP] (P^T, dS^T, dS).
__device__ __forceinline__ void stage_tile(bf16* x, const float (&c)[2][4][4], int row0, int col0) {
  const int lane = threadIdx.x & 31, grp = lane >> 2, tig = lane & 3;
#pragma unroll
  for (int m = 0; m < 2; ++m)
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int t = 0; t < 4; ++t)
        *reinterpret_cast<uint32_t*>(x + (row0 + 16 * m + grp + 8 * r) * kLdP + col0 + 8 * t + 2 * tig) =
            pack_bf16(c[m][t][2 * r], c[m][t][2 * r + 1]);
}

template <int D, int kKeyWarps, bool kAtomicDq>
__global__ void __launch_bounds__(64 * kKeyWarps, 1)
    dkdv_2d_kernel(AttentionShape s, const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse,
                   const float* delta, bf16* dk, bf16* dv, float* dq_acc) {
  using T = Tiles2d<D, kKeyWarps>;
  using AtomicTiles = DkdvTiles<D, 2 * kKeyWarps, kBq, true>;  // dq_tile_atomic's view of the same block
  static_assert(AtomicTiles::kBc == T::kBc && AtomicTiles::kLdDs == kLdP, "dS^T staged as dq_tile_atomic reads it");
  constexpr int kBc = T::kBc, kThreads = T::kThreads, kLd = kLdm<D>, kCols = D / 2;  // kCols: a warp's dK/dV columns
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* k_s = reinterpret_cast<bf16*>(smem);
  bf16* v_s = reinterpret_cast<bf16*>(smem + T::kKeyBytes);
  const QueryStages<D, kBq, kThreads> qs{reinterpret_cast<bf16*>(smem + 2 * T::kKeyBytes),
                                         reinterpret_cast<float*>(smem + 2 * T::kKeyBytes + 4 * T::kQBytes)};
  bf16* pt_s = reinterpret_cast<bf16*>(smem + 2 * T::kKeyBytes + 4 * T::kQBytes + T::kStatBytes);
  bf16* dst_s = pt_s + kBc * kLdP;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, grp = lane >> 2, tig = lane & 3;
  // S^T tile: keys 32 wk, queries 32 wq; dK/dV: keys 32 wk, columns kCols wq.
  const int wk = warp % kKeyWarps, wq = warp / kKeyWarps;
  const int64_t k0 = int64_t(blockIdx.x) * kBc, g = blockIdx.y, group = s.n / s.nkv;
  const int dh = int(s.D);
  const float scale = rsqrtf(float(dh)), scale_log2 = scale * kLog2e;

  // This thread's four keys of the S^T tile (row tile m, half r) and their sequence ends (key j: queries [j, end_j)).
  const int64_t key0 = k0 + 32 * wk;
  int64_t key[2][2], end[2][2];
#pragma unroll
  for (int m = 0; m < 2; ++m)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      key[m][r] = key0 + 16 * m + grp + 8 * r;
      end[m][r] = key[m][r] < s.T ? seq_end(s, key[m][r]) : 0;
    }
  const int64_t end_max = key0 < s.T ? seq_end(s, min(key0 + 31, s.T - 1)) : 0;
  const int64_t end_min = key0 + 31 < s.T ? seq_end(s, key0) : 0;  // 0: some key past T (always masked)

  const int64_t q_end = seq_end(s, min(k0 + kBc, s.T) - 1);  // queries [k0, q_end) see some key of the block
  const int q_tiles = int((q_end - k0 + kBq - 1) / kBq), steps = int(group) * q_tiles;
  auto load_step = [&](int tile, int64_t h, int st) {
    qs.load(st, q, dout, lse, delta, k0 + int64_t(tile) * kBq, s, h);
  };

  cp_async_rows<D, kThreads>(k_s, k, k0, kBc, s.T, s.k_ld, g, dh);
  cp_async_rows<D, kThreads>(v_s, v, k0, kBc, s.T, s.v_ld, g, dh);
  load_step(0, g * group, 0);
  cp_async_commit();

  float dk_acc[2][kCols / 8][4], dv_acc[2][kCols / 8][4];  // keys 32 wk.., columns kCols wq..
  zero(dk_acc);
  zero(dv_acc);
  int tile = 0;
  int64_t h = g * group;
  for (int it = 0; it < steps; ++it) {
    const int st = it & 1;
    const int64_t q0 = k0 + int64_t(tile) * kBq, qw0 = q0 + 32 * wq;  // this warp's first S^T query
    const int next_tile = tile + 1 == q_tiles ? 0 : tile + 1;
    const int64_t next_h = next_tile == 0 ? h + 1 : h;
    pipeline_wait(it, steps, [&](int next) { load_step(next_tile, next_h, next); });
    float pt[2][4][4], dpt[2][4][4];  // S^T -> P^T, dP^T -> dS^T: [32 keys x 32 queries]
    zero(pt);
    zero(dpt);
    // A tile no query of which sees a key (all queries before the keys, or past their ends) stays zero.
    if (key0 < s.T && qw0 + 31 >= key0 && qw0 < end_max) {
      warp_abt<D, 2, 4>(pt, k_s + 32 * wk * kLd, kLd, qs.q(st) + 32 * wq * kLd, kLd);
      warp_abt<D, 2, 4>(dpt, v_s + 32 * wk * kLd, kLd, qs.dout(st) + 32 * wq * kLd, kLd);
      const float* lse_t = qs.lse(st) + 32 * wq;
      const float* delta_t = qs.delta(st) + 32 * wq;
      auto probs = [&](auto masked) {
        for_tile_32x32([&](int m, int r, int t, int e) {
          const int col = 8 * t + 2 * tig + e;
          bool seen = true;
          if constexpr (decltype(masked)::value) {
            const int64_t i = qw0 + col;
            seen = i >= key[m][r] && i < end[m][r];
          }
          float& p = pt[m][t][2 * r + e];
          p = seen ? exp2_sfu(p * scale_log2 - lse_t[col] * kLog2e) : 0.0f;
          dpt[m][t][2 * r + e] = p * (dpt[m][t][2 * r + e] - delta_t[col]);
        });
      };
      if (qw0 >= key0 + 31 && qw0 + 32 <= end_min)
        probs(std::false_type{});
      else
        probs(std::true_type{});
    }
    stage_tile(pt_s, pt, 32 * wk, 32 * wq);  // P^T and dS^T [kBc keys][kLdP]
    stage_tile(dst_s, dpt, 32 * wk, 32 * wq);
    __syncthreads();
    warp_ab<kBq, 2, kCols / 8>(dv_acc, pt_s + 32 * wk * kLdP, kLdP, qs.dout(st) + kCols * wq, kLd);
    warp_ab<kBq, 2, kCols / 8>(dk_acc, dst_s + 32 * wk * kLdP, kLdP, qs.q(st) + kCols * wq, kLd);
    // Fast mode: dQ_tile += dS K_block from the staged dS^T (read only: no extra barrier), float2 atomics.
    if constexpr (kAtomicDq) dq_tile_atomic<D, 2 * kKeyWarps, kBq, true>(dq_acc, s, q0, h, dst_s, k_s);
    __syncthreads();  // stage st and the P^T / dS^T tiles are free for the next step
    tile = next_tile;
    h = next_h;
  }
  // Columns kCols wq.. of rows key0 + 16 m + grp (+ 8): the column offset moves the base, the padding check
  // (columns below dh) moves with it.
  const int col0 = kCols * wq;
#pragma unroll
  for (int m = 0; m < 2; ++m) {
    store_rows_bf16<kCols / 8>(dk + g * dh + col0, dk_acc[m], key0 + 16 * m + grp, s.T, s.k_ld, 0, dh - col0, scale,
                               scale);
    store_rows_bf16<kCols / 8>(dv + g * dh + col0, dv_acc[m], key0 + 16 * m + grp, s.T, s.v_ld, 0, dh - col0, 1.0f,
                               1.0f);
  }
}

template <int D, int kKeyWarps, bool kAtomicDq>
void launch_dkdv_2d(const AttentionShape& s, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                    const float* lse, const float* delta, bf16* dk, bf16* dv, float* dq_acc, cudaStream_t st) {
  using T = Tiles2d<D, kKeyWarps>;
  const dim3 grid(unsigned((s.T + T::kBc - 1) / T::kBc), unsigned(s.nkv));
  launch_with_smem(dkdv_2d_kernel<D, kKeyWarps, kAtomicDq>, grid, T::kThreads, T::smem(), st, s, dout, q, k, v, lse,
                   delta, dk, dv, dq_acc);
}

// The dQ pass with the same shape (04d), query-major: a block of 8 warps owns 128 queries of head h and steps over
// key tiles of 64 (K, V in two cp.async stages); warp w computes the 32 x 32 tile (queries 32 (w % 4), keys
// 32 (w / 4)) of S = q K^T and dP = dout V^T, stages dS = P (dP - delta) as bf16 [128 x 64], then adds
// dQ += dS K for its 32 queries x D/2 columns (A fragments from the staged dS). 154 KiB at D = 128.
constexpr int kDqBr = 128, kDqBc = 64, kDqThreads = 256;

template <int D>
struct DqTiles2d {
  static constexpr size_t kQBytes = size_t(kDqBr) * kLdm<D> * sizeof(bf16);   // q or dout
  static constexpr size_t kKvBytes = size_t(kDqBc) * kLdm<D> * sizeof(bf16);  // k or v, one stage
  static constexpr size_t kDsBytes = size_t(kDqBr) * kLdP * sizeof(bf16);     // dS
  static constexpr size_t smem() { return 2 * kQBytes + 4 * kKvBytes + kDsBytes; }
};

template <int D>
__global__ void __launch_bounds__(kDqThreads, 1)
    dq_2d_kernel(AttentionShape s, const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse,
                 const float* delta, bf16* dq) {
  using T = DqTiles2d<D>;
  constexpr int kLd = kLdm<D>, kCols = D / 2;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* q_s = reinterpret_cast<bf16*>(smem);
  bf16* do_s = reinterpret_cast<bf16*>(smem + T::kQBytes);
  const KvStages<D, kDqBc, kDqThreads> kv{reinterpret_cast<bf16*>(smem + 2 * T::kQBytes)};
  bf16* ds_s = reinterpret_cast<bf16*>(smem + 2 * T::kQBytes + 4 * T::kKvBytes);

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, grp = lane >> 2, tig = lane & 3;
  const int wq = warp % 4, wk = warp / 4;  // S tile: queries 32 wq, keys 32 wk; dQ: queries 32 wq, columns kCols wk
  const int64_t q0 = int64_t(gridDim.x - 1 - blockIdx.x) * kDqBr, h = blockIdx.y, g = h / (s.n / s.nkv);
  const int dh = int(s.D);
  const float scale = rsqrtf(float(dh)), scale_log2 = scale * kLog2e;

  // This thread's four query rows (row tile m, half r): sequence begin (row i sees keys [begin_i, i]), log2e lse_i,
  // delta_i.
  const int64_t row0 = q0 + 32 * wq;
  int64_t row[2][2], begin[2][2];
  float lse2[2][2], dlt[2][2];
#pragma unroll
  for (int m = 0; m < 2; ++m)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      row[m][r] = row0 + 16 * m + grp + 8 * r;
      const bool valid = row[m][r] < s.T;
      begin[m][r] = valid ? seq_begin(s, row[m][r]) : INT64_MAX;  // a row past T sees no key
      lse2[m][r] = valid ? lse[h * s.T + row[m][r]] * kLog2e : 0.0f;
      dlt[m][r] = valid ? delta[h * s.T + row[m][r]] : 0.0f;
    }
  const int64_t row_last = min(row0 + 31, s.T - 1);
  const int64_t begin_min = row0 < s.T ? seq_begin(s, row0) : s.T;
  const int64_t begin_max = row0 + 31 < s.T ? seq_begin(s, row0 + 31) : s.T;  // T: some row past T (masked)
  const int64_t k_first = seq_begin(s, q0), k_last = min(q0 + kDqBr, s.T) - 1;
  const int tiles = int((k_last - k_first) / kDqBc) + 1;

  cp_async_rows<D, kDqThreads>(q_s, q, q0, kDqBr, s.T, s.q_ld, h, dh);
  cp_async_rows<D, kDqThreads>(do_s, dout, q0, kDqBr, s.T, s.n * dh, h, dh);
  kv.load(0, k, v, k_first, s, g);
  cp_async_commit();

  float dq_acc[2][kCols / 8][4];  // queries 32 wq.., columns kCols wk..
  zero(dq_acc);
  for (int it = 0; it < tiles; ++it) {
    const int64_t k0 = k_first + int64_t(it) * kDqBc, kw0 = k0 + 32 * wk;  // this warp's first S key
    pipeline_wait(it, tiles, [&](int st) { kv.load(st, k, v, k0 + kDqBc, s, g); });
    float sc[2][4][4], dp[2][4][4];  // S -> P -> dS, dP: [32 queries x 32 keys]
    zero(sc);
    zero(dp);
    if (row0 < s.T && kw0 <= row_last && kw0 + 31 >= begin_min) {
      warp_abt<D, 2, 4>(sc, q_s + 32 * wq * kLd, kLd, kv.k(it & 1) + 32 * wk * kLd, kLd);
      warp_abt<D, 2, 4>(dp, do_s + 32 * wq * kLd, kLd, kv.v(it & 1) + 32 * wk * kLd, kLd);
      auto grads = [&](auto masked) {
        for_tile_32x32([&](int m, int r, int t, int e) {
          bool seen = true;
          if constexpr (decltype(masked)::value) {
            const int64_t j = kw0 + 8 * t + 2 * tig + e;
            seen = j >= begin[m][r] && j <= row[m][r];
          }
          float& x = sc[m][t][2 * r + e];
          const float p = seen ? exp2_sfu(x * scale_log2 - lse2[m][r]) : 0.0f;
          x = p * (dp[m][t][2 * r + e] - dlt[m][r]);
        });
      };
      if (kw0 >= begin_max && kw0 + 31 <= row0)
        grads(std::false_type{});
      else
        grads(std::true_type{});
    }
    stage_tile(ds_s, sc, 32 * wq, 32 * wk);  // dS [128 queries][kLdP]
    __syncthreads();
    warp_ab<kDqBc, 2, kCols / 8>(dq_acc, ds_s + 32 * wq * kLdP, kLdP, kv.k(it & 1) + kCols * wk, kLd);
    __syncthreads();  // the K/V stage and dS are free for the next tile
  }
  const int col0 = kCols * wk;
#pragma unroll
  for (int m = 0; m < 2; ++m)
    store_rows_bf16<kCols / 8>(dq + h * dh + col0, dq_acc[m], row0 + 16 * m + grp, s.T, s.q_ld, 0, dh - col0, scale,
                               scale);
}

// How dQ is computed: production's dQ pass (Small, the one Auto runs on the H200), the 2-D dQ pass above, or the
// fast mode's atomics from the dK/dV kernel.
enum class DqPass { Production, TwoD, Atomic };
using DqCfg = BwdConfig<4, 32, 4, 32>;

// dq_acc: the fast mode's fp32 accumulator [T, n, s.D] (DqPass::Atomic).
template <int D, int kKeyWarps, DqPass kDq>
void run(const AttentionShape& s, const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse,
         const float* delta, bf16* dq, bf16* dk, bf16* dv, float* dq_acc, cudaStream_t st) {
  if constexpr (kDq == DqPass::Atomic) {
    QSFT_CUDA_CHECK(cudaMemsetAsync(dq_acc, 0, size_t(s.T * s.n * s.D) * sizeof(float), st));
    launch_dkdv_2d<D, kKeyWarps, true>(s, dout, q, k, v, lse, delta, dk, dv, dq_acc, st);
    dq_from_acc(s, dq_acc, dq, st);
    return;
  }
  launch_dkdv_2d<D, kKeyWarps, false>(s, dout, q, k, v, lse, delta, dk, dv, nullptr, st);
  if constexpr (kDq == DqPass::TwoD) {
    const dim3 grid(unsigned((s.T + kDqBr - 1) / kDqBr), unsigned(s.n));
    launch_with_smem(dq_2d_kernel<D>, grid, kDqThreads, DqTiles2d<D>::smem(), st, s, dout, q, k, v, lse, delta, dq);
  } else {
    launch_dq<D, DqCfg::kDqWarps, DqCfg::kDqBc, DqCfg::kMinBlocks, DqCfg::kDqRegs>(s, dout, q, k, v, lse, delta, dq,
                                                                                     st);
  }
}

// scratch: delta, then (DqPass::Atomic) the fp32 dQ accumulator, as production's (attention_bwd_scratch_bytes).
template <int kKeyWarps, DqPass kDq>
void bwd_2d(const AttentionShape& shape, const void* dout, const void* q, const void* k, const void* v,
            const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream) {
  if (shape.T == 0) return;
  const AttentionShape s = check_shape(shape, {dout, q, k, v, out, dq, dk, dv});
  const cudaStream_t st = cuda::as_stream(stream);
  bwd_dispatch(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, st, kDq == DqPass::Atomic,
               [&](auto d, auto... tensors) { run<decltype(d)::value, kKeyWarps, kDq>(s, tensors..., st); });
}

}  // namespace

void attention_bwd_dev04a(const cuda::AttentionShape& s, const void* dout, const void* q, const void* k,
                          const void* v, const void* out, const float* lse, void* dq, void* dk, void* dv,
                          void* scratch, void* stream) {
  bwd_2d<4, DqPass::Production>(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, stream);
}
void attention_bwd_dev04b(const cuda::AttentionShape& s, const void* dout, const void* q, const void* k,
                          const void* v, const void* out, const float* lse, void* dq, void* dk, void* dv,
                          void* scratch, void* stream) {
  bwd_2d<2, DqPass::Production>(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, stream);
}
void attention_bwd_dev04c(const cuda::AttentionShape& s, const void* dout, const void* q, const void* k,
                          const void* v, const void* out, const float* lse, void* dq, void* dk, void* dv,
                          void* scratch, void* stream) {
  bwd_2d<4, DqPass::Atomic>(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, stream);
}
void attention_bwd_dev04d(const cuda::AttentionShape& s, const void* dout, const void* q, const void* k,
                          const void* v, const void* out, const float* lse, void* dq, void* dk, void* dv,
                          void* scratch, void* stream) {
  bwd_2d<4, DqPass::TwoD>(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, stream);
}

}  // namespace qsft::dev
