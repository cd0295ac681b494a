// attention_fwd / attention_bwd: the mma.sync kernels (attention_mma*.cu), the WMMA ones (attention.cu,
// attention_bwd.cu) or the wgmma ones (attention_wgmma*.cu), chosen per call by QSFT_ATTENTION, and the mma tile
// configuration chosen per device.
#include <cstdlib>
#include <cstring>

#include "kernels/attention_mma_cuda.h"

namespace qsft::cuda {

bool attention_supports_head_dim(int64_t D) { return D >= 8 && D <= kAttentionMaxHeadDim && D % 8 == 0; }

namespace {

struct DeviceCc {
  int dev = 0, major = 0, minor = 0;
};
DeviceCc current_device_cc() {
  DeviceCc d;
  QSFT_CUDA_CHECK(cudaGetDevice(&d.dev));
  QSFT_CUDA_CHECK(cudaDeviceGetAttribute(&d.major, cudaDevAttrComputeCapabilityMajor, d.dev));
  QSFT_CUDA_CHECK(cudaDeviceGetAttribute(&d.minor, cudaDevAttrComputeCapabilityMinor, d.dev));
  return d;
}

// wgmma_device_refusal for device d; the device's name is queried only when it refuses.
std::string wgmma_refusal(const std::string& who, const DeviceCc& d) {
  if (wgmma_device_refusal(who, "", d.major, d.minor).empty()) return "";
  cudaDeviceProp prop{};
  QSFT_CUDA_CHECK(cudaGetDeviceProperties(&prop, d.dev));
  return wgmma_device_refusal(who, "CUDA device " + std::to_string(d.dev) + " (" + prop.name + ")", d.major, d.minor);
}

}  // namespace

std::string attention_wgmma_unsupported_reason(const std::string& who) {
  return wgmma_refusal(who, current_device_cc());
}

AttentionImpl attention_impl_from_env() {
  const DeviceCc d = current_device_cc();  // one query per call, for the default and the wgmma check
  const AttentionImpl impl =
      parse_attention_impl(std::getenv("QSFT_ATTENTION"), default_attention_impl(d.major, d.minor));
  if (impl == AttentionImpl::Wgmma)
    if (const std::string why = wgmma_refusal("QSFT_ATTENTION=wgmma", d); !why.empty())
      throw std::runtime_error(why);
  return impl;
}

AttentionTiles attn::resolve_tiles(int64_t D, AttentionTiles tiles, bool forward) {
  if (tiles != AttentionTiles::Auto) return tiles;
  if (const char* e = std::getenv("QSFT_ATTENTION_TILES"); e && *e) {
    if (std::strcmp(e, "large") == 0) return AttentionTiles::Large;
    if (std::strcmp(e, "small") == 0) return AttentionTiles::Small;
    throw std::invalid_argument(std::string("QSFT_ATTENTION_TILES=") + e + ": expected large or small");
  }
  // Large where two of its blocks fit an SM: on the H200 (bench/gpu-runs/2026-11-30-45ffbc3/bench.log, 4 x 4096
  // causal), with two blocks per SM, today's Large configurations beat Small in both passes at both head dims
  // (attention_mma.cu, attention_mma_bwd.cu); where they do not (A100's backward at D = 128, the 99 KiB GPUs) Small,
  // whose smaller blocks fit at least as many an SM (at D = 128 on the 99 KiB GPUs one; never timed there).
  int dev = 0, per_sm = 0, reserved = 0;
  QSFT_CUDA_CHECK(cudaGetDevice(&dev));
  QSFT_CUDA_CHECK(cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev));
  QSFT_CUDA_CHECK(cudaDeviceGetAttribute(&reserved, cudaDevAttrReservedSharedMemoryPerBlock, dev));
  const size_t large =
      forward ? attention_fwd_mma_smem(D, AttentionTiles::Large) : attention_bwd_mma_smem(D, AttentionTiles::Large);
  return 2 * (large + size_t(reserved)) <= size_t(per_sm) ? AttentionTiles::Large : AttentionTiles::Small;
}

bool attention_mma_tiles_fit(int64_t D, AttentionTiles tiles) {
  int dev = 0, optin = 0;
  QSFT_CUDA_CHECK(cudaGetDevice(&dev));
  QSFT_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  return std::max(attention_fwd_mma_smem(D, tiles), attention_bwd_mma_smem(D, tiles)) <= size_t(optin);
}

void attention_fwd(const AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse,
                   void* stream) {
  switch (attention_impl_from_env()) {
    case AttentionImpl::Mma: return attention_fwd_mma(s, q, k, v, out, lse, stream);
    case AttentionImpl::Wmma: return attention_fwd_wmma(s, q, k, v, out, lse, stream);
    case AttentionImpl::Wgmma: return attention_fwd_wgmma(s, q, k, v, out, lse, stream);
  }
}

void attention_bwd(const AttentionShape& s, const void* dout, const void* q, const void* k, const void* v,
                   const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream) {
  switch (attention_impl_from_env()) {
    case AttentionImpl::Mma: return attention_bwd_mma(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, stream);
    case AttentionImpl::Wmma: return attention_bwd_wmma(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, stream);
    case AttentionImpl::Wgmma: return attention_bwd_wgmma(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, stream);
  }
}

}  // namespace qsft::cuda
