// The attention implementations a benchmark compares (bench/gpu_attention_bench.cpp), each with the production
// launchers' signatures (kernels/attention_cuda.h): the production ones (mma.sync with the Large and Small tile
// configurations, WMMA) and the numbered variants of this folder (kernels/dev/README.md), each declared and
// listed here; a variant that changes only one pass uses the production launcher for the other.
#pragma once
#include <vector>

#include "kernels/attention_cuda.h"

namespace qsft::dev {

struct AttentionVariant {
  const char* name;
  void (*fwd)(const cuda::AttentionShape&, const void* q, const void* k, const void* v, void* out, float* lse,
              void* stream);
  void (*bwd)(const cuda::AttentionShape&, const void* dout, const void* q, const void* k, const void* v,
              const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream);
  bool (*supports)(int64_t D);
};

// 00_before.cu: the mma kernels as they were at 4a2ff4c (first H200 run), Large and Small tiles, deterministic.
void attention_fwd_dev00_large(const cuda::AttentionShape& s, const void* q, const void* k, const void* v, void* out,
                               float* lse, void* stream);
void attention_fwd_dev00_small(const cuda::AttentionShape& s, const void* q, const void* k, const void* v, void* out,
                               float* lse, void* stream);
void attention_bwd_dev00_large(const cuda::AttentionShape& s, const void* dout, const void* q, const void* k,
                               const void* v, const void* out, const float* lse, void* dq, void* dk, void* dv,
                               void* scratch, void* stream);
void attention_bwd_dev00_small(const cuda::AttentionShape& s, const void* dout, const void* q, const void* k,
                               const void* v, const void* out, const float* lse, void* dq, void* dk, void* dv,
                               void* scratch, void* stream);

// 01_fwd_4warps_32rows.cu: forward with 4 warps x 32 query rows (FA2's layout).
void attention_fwd_dev01(const cuda::AttentionShape& s, const void* q, const void* k, const void* v, void* out,
                         float* lse, void* stream);

// 02_occupancy.cu: more blocks per SM in the forward (02a), 64-query dK/dV steps in the backward (02b), the dQ
// pass's q/dout fragments in registers (02c).
void attention_fwd_dev02a(const cuda::AttentionShape& s, const void* q, const void* k, const void* v, void* out,
                          float* lse, void* stream);
void attention_bwd_dev02c(const cuda::AttentionShape& s, const void* dout, const void* q, const void* k, const void* v,
                          const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream);
void attention_bwd_dev02b(const cuda::AttentionShape& s, const void* dout, const void* q, const void* k, const void* v,
                          const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream);

// 03_fwd_3stages.cu: the forward with three K/V stages, one block barrier per key tile.
void attention_fwd_dev03(const cuda::AttentionShape& s, const void* q, const void* k, const void* v, void* out,
                         float* lse, void* stream);

// 04_bwd_dkdv_2d.cu: the dK/dV pass with 64-query steps and 32 x 32 warp tiles (P^T, dS^T staged in shared
// memory, FlashAttention-2's shape), 128-key blocks of 8 warps (04a) or 64-key blocks of 4 warps (04b); production's
// Small dQ pass.
void attention_bwd_dev04a(const cuda::AttentionShape& s, const void* dout, const void* q, const void* k, const void* v,
                          const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream);
void attention_bwd_dev04b(const cuda::AttentionShape& s, const void* dout, const void* q, const void* k, const void* v,
                          const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream);
// 04c: 04a in the fast mode (5 products): each step adds dQ_tile += dS K_block from the staged dS^T by fp32 atomics
// (float2 REDs on sm_90).
void attention_bwd_dev04c(const cuda::AttentionShape& s, const void* dout, const void* q, const void* k, const void* v,
                          const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream);
// 04d: 04a with the dQ pass in the same shape (8 warps x 128 queries, 64-key steps, 32 x 32 tiles of S and dP, dS
// staged, each warp 32 queries x D/2 of dQ): the deterministic 7 products, all in 2-D warp tiles.
void attention_bwd_dev04d(const cuda::AttentionShape& s, const void* dout, const void* q, const void* k, const void* v,
                          const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream);

// The wgmma rows (the production wgmma launchers, the default on compute capability 9.0, and 05b) run where this holds:
// compute capability 9.0 and QSFT_DEV_WGMMA not "off" (tools/gpu-check.sh sets it when the probe failed;
// 05_wgmma_probe_sm90a.cu).
bool attention_wgmma_supports(int64_t D);
// 05b_wgmma_fwd_3stages_sm90a.cu: the production wgmma forward with three K/V stages, P V of a tile left in flight
// across the next tile's barrier and S issue.
void attention_fwd_dev05b(const cuda::AttentionShape& s, const void* q, const void* k, const void* v, void* out,
                          float* lse, void* stream);

// The production mma launchers with the tile configuration and backward mode fixed (Auto: the device's choice;
// QSFT_ATTENTION_TILES must be unset).
template <cuda::AttentionTiles kTiles>
void fwd_mma_with(const cuda::AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse,
                  void* stream) {
  cuda::attention_fwd_mma(s, q, k, v, out, lse, stream, kTiles);
}
template <cuda::AttentionBwdMode kMode>
void bwd_wgmma_with(const cuda::AttentionShape& s, const void* dout, const void* q, const void* k, const void* v,
                    const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream) {
  cuda::attention_bwd_wgmma(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, stream, kMode);
}
template <cuda::AttentionTiles kTiles, cuda::AttentionBwdMode kMode>
void bwd_mma_with(const cuda::AttentionShape& s, const void* dout, const void* q, const void* k, const void* v,
                  const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream) {
  cuda::attention_bwd_mma(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, stream, kTiles, kMode);
}

// The scratch passed to bwd must hold attention_bwd_scratch_bytes(s, AttentionBwdMode::AtomicDq).
inline std::vector<AttentionVariant> attention_variants() {
  using cuda::AttentionBwdMode;
  using cuda::AttentionTiles;
  constexpr auto kAuto = AttentionTiles::Auto, kLarge = AttentionTiles::Large, kSmall = AttentionTiles::Small;
  constexpr auto kDeterministic = AttentionBwdMode::Deterministic, kAtomic = AttentionBwdMode::AtomicDq;
  const auto all = cuda::attention_supports_head_dim;  // every variant runs every head dim the op takes
  return {
      {"mma auto (default but on sm_90)", fwd_mma_with<kAuto>, bwd_mma_with<kAuto, kDeterministic>, all},
      {"00 before: mma large (was prod.)", attention_fwd_dev00_large, attention_bwd_dev00_large, all},
      {"00 before: mma small", attention_fwd_dev00_small, attention_bwd_dev00_small, all},
      {"mma large", fwd_mma_with<kLarge>, bwd_mma_with<kLarge, kDeterministic>, all},
      {"mma large, atomic dQ bwd", fwd_mma_with<kLarge>, bwd_mma_with<kLarge, kAtomic>, all},
      {"mma small, atomic dQ bwd", fwd_mma_with<kSmall>, bwd_mma_with<kSmall, kAtomic>, all},
      {"mma small (99 KiB GPUs)", fwd_mma_with<kSmall>, bwd_mma_with<kSmall, kDeterministic>, all},
      {"01 fwd 4 warps x 32 rows", attention_fwd_dev01, bwd_mma_with<kAuto, kDeterministic>, all},
      {"02a fwd more blocks/SM", attention_fwd_dev02a, bwd_mma_with<kAuto, kDeterministic>, all},
      {"02b bwd dK/dV 64-query steps", fwd_mma_with<kAuto>, attention_bwd_dev02b, all},
      {"02c bwd dQ q/dout in registers", fwd_mma_with<kAuto>, attention_bwd_dev02c, all},
      {"03 fwd 3 stages, 1 barrier/tile", attention_fwd_dev03, bwd_mma_with<kAuto, kDeterministic>, all},
      {"04a bwd dK/dV 2-D tiles, 8 warps", fwd_mma_with<kAuto>, attention_bwd_dev04a, all},
      {"04b bwd dK/dV 2-D tiles, 4 warps", fwd_mma_with<kAuto>, attention_bwd_dev04b, all},
      {"04c 04a with atomic dQ (5 products)", fwd_mma_with<kAuto>, attention_bwd_dev04c, all},
      {"04d 04a + 2-D dQ pass (7 products)", fwd_mma_with<kAuto>, attention_bwd_dev04d, all},
      {"wmma (QSFT_ATTENTION=wmma)", cuda::attention_fwd_wmma, cuda::attention_bwd_wmma, all},
      {"wgmma (default on sm_90)", cuda::attention_fwd_wgmma, bwd_wgmma_with<kDeterministic>, attention_wgmma_supports},
      {"wgmma, atomic dQ bwd", cuda::attention_fwd_wgmma, bwd_wgmma_with<kAtomic>, attention_wgmma_supports},
      {"05b fwd wgmma, 3 stages", attention_fwd_dev05b, bwd_mma_with<kAuto, kDeterministic>, attention_wgmma_supports},
  };
}

}  // namespace qsft::dev
