// The wgmma attention forward (QSFT_ATTENTION=wgmma; the kernel: attention_wgmma_fwd_cuda.h), two K/V stages.
// Why two and not three: three stages (P V of a tile left in flight across the next tile's barrier; the deleted
// kernels/dev/attention/05b) measured 1.340 vs 1.354 ms at the 7B shape and 0.498 vs 0.498 at the 0.5B one on the
// H200 (bench/gpu-runs/2026-11-30-45ffbc3), not worth 225 instead of 161 KiB of shared memory at D = 128.
#include "kernels/attention_wgmma_fwd_cuda.h"

namespace qsft::cuda {

void attention_fwd_wgmma(const AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse,
                         void* stream) {
  wgfwd::fwd<2>(s, q, k, v, out, lse, stream);
}

}  // namespace qsft::cuda
