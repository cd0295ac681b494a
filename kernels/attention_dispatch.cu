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

AttentionTiles attn::resolve_tiles(int64_t D, AttentionTiles tiles) {
  if (tiles != AttentionTiles::Auto) return tiles;
  if (const char* e = std::getenv("QSFT_ATTENTION_TILES"); e && *e) {
    if (std::strcmp(e, "large") == 0) return AttentionTiles::Large;
    if (std::strcmp(e, "small") == 0) return AttentionTiles::Small;
    throw std::invalid_argument(std::string("QSFT_ATTENTION_TILES=") + e + ": expected large or small");
  }
  int dev = 0, optin = 0;
  QSFT_CUDA_CHECK(cudaGetDevice(&dev));
  QSFT_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  const size_t large =
      std::max(attention_fwd_mma_smem(D, AttentionTiles::Large), attention_bwd_mma_smem(D, AttentionTiles::Large));
  return size_t(optin) >= large ? AttentionTiles::Large : AttentionTiles::Small;
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
