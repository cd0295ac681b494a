// attention_fwd / attention_bwd: the mma.sync kernels (attention_mma*.cu) or the WMMA ones (attention.cu,
// attention_bwd.cu), chosen per call by QSFT_ATTENTION, and the mma tile configuration chosen per device.
#include <cstdlib>
#include <cstring>

#include "kernels/attention_mma_cuda.h"

namespace qsft::cuda {

bool attention_supports_head_dim(int64_t D) { return D >= 8 && D <= kAttentionMaxHeadDim && D % 8 == 0; }

AttentionImpl attention_impl_from_env() {
  const char* e = std::getenv("QSFT_ATTENTION");
  if (!e || !*e || std::strcmp(e, "mma") == 0) return AttentionImpl::Mma;
  if (std::strcmp(e, "wmma") == 0) return AttentionImpl::Wmma;
  throw std::invalid_argument(std::string("QSFT_ATTENTION=") + e + ": expected mma or wmma");
}

AttentionTiles attn::resolve_tiles(int64_t D, AttentionTiles tiles, bool forward) {
  if (tiles != AttentionTiles::Auto) return tiles;
  if (const char* e = std::getenv("QSFT_ATTENTION_TILES"); e && *e) {
    if (std::strcmp(e, "large") == 0) return AttentionTiles::Large;
    if (std::strcmp(e, "small") == 0) return AttentionTiles::Small;
    throw std::invalid_argument(std::string("QSFT_ATTENTION_TILES=") + e + ": expected large or small");
  }
  // Measured on the H200 (bench/gpu-runs/2026-11-30-79882bf/bench.log, 4 x 4096 causal): Large only wins the
  // forward at D = 128 (176 vs 165 TFLOP/s); Small, with two blocks per SM, wins the forward at D = 64 (119 vs
  // 103) and the backward at both (108 vs 97, 73 vs 54).
  if (!forward || D <= 64) return AttentionTiles::Small;
  int dev = 0, optin = 0;
  QSFT_CUDA_CHECK(cudaGetDevice(&dev));
  QSFT_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  return size_t(optin) >= attention_fwd_mma_smem(D, AttentionTiles::Large) ? AttentionTiles::Large
                                                                            : AttentionTiles::Small;
}

void attention_fwd(const AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse,
                   void* stream) {
  if (attention_impl_from_env() == AttentionImpl::Mma)
    attention_fwd_mma(s, q, k, v, out, lse, stream);
  else
    attention_fwd_wmma(s, q, k, v, out, lse, stream);
}

void attention_bwd(const AttentionShape& s, const void* dout, const void* q, const void* k, const void* v,
                   const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream) {
  if (attention_impl_from_env() == AttentionImpl::Mma)
    attention_bwd_mma(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, stream);
  else
    attention_bwd_wmma(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, stream);
}

}  // namespace qsft::cuda
