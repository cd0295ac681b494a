// The attention forward on Hopper wgmma (FlashAttention-3's instructions, without its warp specialisation), sm_90a
// only (kernels/attention_wgmma_cuda.h has the layouts and instructions): QSFT_ATTENTION=wgmma runs it with two K/V
// stages (attention_wgmma_fwd.cu).
// One block of 2 warpgroups (256 threads) per (128 query rows, query head h); warpgroup wg owns the 64 rows
// q0 + 64 wg .., each of its warps 16 of them, exactly as the mma kernel's warps (attention_mma_fwd_cuda.h):
// the wgmma accumulator layout per warp IS mma.sync's C fragment, so the mma path's masked online softmax
// (softmax_tile), FA2's P-in-registers (to_a) and the epilogue (lse in the same units, bf16 stores skipping padded
// columns) are reused unchanged. Per key tile of kBc = 128 keys:
//   S [64 x 128] = Q K^T     SS wgmma, Q and K K-major from 128-byte-swizzled shared tiles (D / 16 instructions)
//   P = softmax step (exp2, log2 e folded into the scale), masked only on the tiles that need it, O rescaled
//   O [64 x D] += P V        RS wgmma, P from registers, V MN-major from the same tile format (8 instructions)
// Q [128 x D] stays in shared memory; K/V tiles stream through kStages shared stages by cp.async.cg (tile t + 1
// loads while t is computed; all 256 threads issue the copies); padded head dims, strided q/k/v views and GQA /
// cu_seqlens exactly as the mma path. 2 stages: each warpgroup retires its P V before the next tile's barrier.
// 3 stages: P V of tile t stays in flight across that barrier and the next tile's loads and S issue (the stage it
// reads is refilled only at tile t + 2), so the tensor cores run P V (t) and S (t + 1) back to back.
// Registers: D = 128 S 64 + O 64 + P 32 fp32/b32 per thread (kernels/dev/README.md has ptxas's count).
// Shared memory: 1 KiB alignment + Q 128 D 2 + kStages x (K + V) 128 D 2 bytes: 161 / 225 KiB (D = 128, 2 / 3
// stages), 81 / 113 KiB (D = 64). CUDA code for the sm_90a-only files (kernels/CMakeLists.txt): include from
// attention_wgmma*.cu and kernels/dev/attention/*_sm90a.cu only.
#pragma once
#include <stdexcept>

#include "kernels/attention_mma_fwd_cuda.h"
#include "kernels/attention_wgmma_cuda.h"

namespace qsft::cuda::wgfwd {

constexpr int kBr = 128, kBc = 128, kThreads = 256;  // query rows, keys per tile, 2 warpgroups

template <int D, int kStages>
struct WgFwdSmem {
  static constexpr uint32_t kQ = wg::Sw128<kBr>::bytes(D), kTile = wg::Sw128<kBc>::bytes(D);  // Q; one K or V tile
  static constexpr size_t kBytes = 1024 + kQ + 2 * kStages * size_t(kTile);  // alignment slack + Q + stages x (K, V)
  static __device__ uint32_t k(uint32_t base, int st) { return base + kQ + uint32_t(2 * st) * kTile; }
  static __device__ uint32_t v(uint32_t base, int st) { return base + kQ + uint32_t(2 * st + 1) * kTile; }
};

template <int D, int kStages>
__global__ void __launch_bounds__(kThreads, 1)
    attention_fwd_wgmma_kernel(AttentionShape s, const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(kStages == 2 || kStages == 3, "two or three K/V stages");
  constexpr bool kPvInFlight = kStages == 3;  // P V (t) retired only by tile t + 1's wait (see the top)
  using Smem = WgFwdSmem<D, kStages>;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024u - (attn::smem_u32(smem_raw) & 1023u)) & 1023u);  // Sw128 atoms
  const uint32_t base = attn::smem_u32(smem);
  auto load_kv = [&](int st, int64_t row0, int64_t g) {
    unsigned char* k_s = smem + (Smem::k(base, st) - base);
    unsigned char* v_s = smem + (Smem::v(base, st) - base);
    wg::cp_async_rows_sw128<D, kBc, kThreads>(k_s, k, row0, s.T, s.k_ld, g, int(s.D));
    wg::cp_async_rows_sw128<D, kBc, kThreads>(v_s, v, row0, s.T, s.v_ld, g, int(s.D));
  };

  const int warp = threadIdx.x >> 5, wgi = warp >> 2, grp = (threadIdx.x & 31) >> 2, tig = threadIdx.x & 3;
  // Heaviest (latest) query tiles first: causal work grows with the position in the sequence.
  const int64_t q0 = int64_t(gridDim.x - 1 - blockIdx.x) * kBr, h = blockIdx.y, g = h / (s.n / s.nkv);
  const float scale_log2 = rsqrtf(float(s.D)) * attn::kLog2e;  // the head dim's, not the padded D's

  // This thread's rows (grp, grp + 8 of its warp's 16) and their visible keys [begin, row], as production.
  const int64_t warp_row0 = q0 + 16 * warp;
  int64_t row[1][2], begin[1][2];
  bool valid[1][2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row[0][r] = warp_row0 + grp + 8 * r;
    valid[0][r] = row[0][r] < s.T;
    begin[0][r] = valid[0][r] ? attn::seq_begin(s, row[0][r]) : 0;
  }
  // A key tile with k0 >= the warp's largest begin and k0 + kBc - 1 <= its first row needs no mask for this warp.
  const int64_t warp_begin_max = warp_row0 + 15 < s.T ? attn::seq_begin(s, warp_row0 + 15) : s.T;
  // The warpgroup skips a tile none of its 64 rows sees (all before k0, or all in later sequences): uniform over
  // its 128 threads, as the .aligned wgmma requires.
  const int64_t wg_row0 = q0 + 64 * wgi, wg_last = min(wg_row0 + 63, s.T - 1);
  const int64_t wg_begin = wg_row0 < s.T ? attn::seq_begin(s, wg_row0) : s.T;

  const int64_t k_first = attn::seq_begin(s, q0), k_last = min(q0 + kBr, s.T) - 1;
  const int tiles = int((k_last - k_first) / kBc) + 1;

  wg::cp_async_rows_sw128<D, kBr, kThreads>(smem, q, q0, s.T, s.q_ld, h, int(s.D));
  load_kv(0, k_first, g);
  attn::cp_async_commit();

  float o[1][D / 8][4];
  attn::zero(o);
  float m_run[1][2] = {{-INFINITY, -INFINITY}}, l[1][2] = {{0.0f, 0.0f}};  // running max (log2 units), partial sums
  for (int it = 0; it < tiles; ++it) {
    const int64_t k0 = k_first + int64_t(it) * kBc;
    const int st = it % kStages;
    // Tile it (and Q) copied by this thread, made visible to the async proxy wgmma reads through, then the barrier
    // hands every thread's copies to both warpgroups. The barrier also means both warpgroups retired the wgmmas
    // that read stage (it + 1) % kStages (tile it - 1's with 2 stages: each waits for its own below; tile it - 2's
    // with 3: retired by tile it - 1's wait), so it may be refilled now.
    attn::cp_async_wait<0>();
    wg::fence_proxy_async();
    __syncthreads();
    if (it + 1 < tiles) {
      load_kv((it + 1) % kStages, k0 + kBc, g);
      attn::cp_async_commit();
    }
    if (wg_row0 >= s.T || wg_last < k0 || wg_begin > k0 + kBc - 1) {  // (the next barrier still follows)
      if constexpr (kPvInFlight) {  // retire P V (it - 1) before that barrier: tile it + 1 refills its stage
        wg::wgmma_wait<0>();
        wg::fence_operands(o[0]);
      }
      continue;
    }
    float sc[1][kBc / 8][4];
    // S = Q K^T: sc is written only by the wgmmas (the first overwrites), retired before softmax touches it. The
    // wait also retires P V (it - 1) when it is still in flight: O is rescaled below.
    wg::fence_operands(sc[0]);
    wg::wgmma_fence();
    wg::wgmma_ss_k<kBc, D, kBr, kBc, 0>(sc[0], base, 64 * wgi, Smem::k(base, st), 0, false);
    wg::wgmma_commit();
    wg::wgmma_wait<0>();
    wg::fence_operands(sc[0]);
    if constexpr (kPvInFlight) wg::fence_operands(o[0]);
    if (k0 >= warp_begin_max && k0 + kBc - 1 <= warp_row0)
      attn::softmax_tile<false>(sc, o, m_run, l, scale_log2, k0, row, begin, valid);
    else
      attn::softmax_tile<true>(sc, o, m_run, l, scale_log2, k0, row, begin, valid);
    // O += P V: P's fragments and O's rescale are register writes, so all of them precede the wgmma fence.
    uint32_t p[kBc / 16][4];
    wg::to_a_all<kBc>(p, sc[0]);
    wg::fence_operands(p);  // as the backward does: ptxas keeps p's writes before the wgmma that reads them
    wg::fence_operands(o[0]);
    wg::wgmma_fence();
    wg::wgmma_rs_k<D, kBc, kBc>(o[0], p, Smem::v(base, st), 0, true);
    wg::wgmma_commit();
    if constexpr (!kPvInFlight) {
      wg::wgmma_wait<0>();  // O readable again, V of stage st no longer read (before the next barrier recycles it)
      wg::fence_operands(o[0]);
    }
  }
  if constexpr (kPvInFlight) {
    wg::wgmma_wait<0>();
    wg::fence_operands(o[0]);
  }

  float inv_l[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float sum = attn::quad_sum(l[0][r]);
    inv_l[r] = sum > 0.0f ? 1.0f / sum : 0.0f;
    if (valid[0][r] && tig == 0) lse[h * s.T + row[0][r]] = attn::kLn2 * (m_run[0][r] + log2f(sum));
  }
  attn::store_rows_bf16<D / 8>(out, o[0], warp_row0 + grp, s.T, s.n * s.D, h, int(s.D), inv_l[0], inv_l[1]);
#else
  __trap();
#endif
}

template <int D, int kStages>
inline void launch(const AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse,
                   void* stream) {
  const dim3 grid(unsigned((s.T + kBr - 1) / kBr), unsigned(s.n));
  attn::launch_with_smem(attention_fwd_wgmma_kernel<D, kStages>, grid, kThreads, WgFwdSmem<D, kStages>::kBytes,
                         as_stream(stream), s, static_cast<const bf16*>(q), static_cast<const bf16*>(k),
                         static_cast<const bf16*>(v), static_cast<bf16*>(out), lse);
}

// The whole forward with kStages K/V stages (attention_fwd_wgmma's arguments): refuses a device that is not
// compute capability 9.0 and head dims the kernels do not take, runs the 64 or 128 kernel.
template <int kStages>
void fwd(const AttentionShape& shape, const void* q, const void* k, const void* v, void* out, float* lse,
         void* stream) {
  if (shape.T == 0) return;
  if (const std::string why = attention_wgmma_unsupported_reason("attention_fwd_wgmma"); !why.empty())
    throw std::runtime_error(why);
  const AttentionShape s = attn::check_shape(shape, {q, k, v, out});
  QSFT_CHECK(attention_supports_head_dim(s.D),
             "attention_fwd_wgmma: head_dim " + std::to_string(s.D) + " is not a multiple of 8 in [8, 128]");
  if (s.D <= 64)
    launch<64, kStages>(s, q, k, v, out, lse, stream);
  else
    launch<128, kStages>(s, q, k, v, out, lse, stream);
}

}  // namespace qsft::cuda::wgfwd
