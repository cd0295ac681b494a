// The attention implementations a benchmark compares (bench/gpu_attention_bench.cpp), each with the production
// launchers' signatures (kernels/attention_cuda.h): the production ones (wgmma, mma.sync with the Large and Small
// tile configurations, WMMA) and the numbered variants of this folder (kernels/dev/README.md), each declared and
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

// The wgmma rows (the production wgmma launchers, the default on compute capability 9.0) run where this holds:
// compute capability 9.0 and QSFT_DEV_WGMMA not "off" (tools/gpu-check.sh sets it when the probe failed;
// 05_wgmma_probe_sm90a.cu).
bool attention_wgmma_supports(int64_t D);

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
      {"mma large", fwd_mma_with<kLarge>, bwd_mma_with<kLarge, kDeterministic>, all},
      {"mma large, atomic dQ bwd", fwd_mma_with<kLarge>, bwd_mma_with<kLarge, kAtomic>, all},
      {"mma small, atomic dQ bwd", fwd_mma_with<kSmall>, bwd_mma_with<kSmall, kAtomic>, all},
      {"mma small (99 KiB GPUs)", fwd_mma_with<kSmall>, bwd_mma_with<kSmall, kDeterministic>, all},
      {"wmma (QSFT_ATTENTION=wmma)", cuda::attention_fwd_wmma, cuda::attention_bwd_wmma, all},
      {"wgmma (default on sm_90)", cuda::attention_fwd_wgmma, bwd_wgmma_with<kDeterministic>, attention_wgmma_supports},
      {"wgmma, atomic dQ bwd", cuda::attention_fwd_wgmma, bwd_wgmma_with<kAtomic>, attention_wgmma_supports},
  };
}

}  // namespace qsft::dev
