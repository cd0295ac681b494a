// Variant 05b of the attention forward: the production wgmma forward (kernels/attention_wgmma_fwd_cuda.h) with
// three K/V stages instead of two: a warpgroup's P V of tile t stays in flight across tile t + 1's barrier, loads
// and S issue (its stage is refilled only at t + 2), 225 KiB of shared memory at D = 128. Predicted 5-10 % over
// production's two stages (kernels/dev/README.md).
#include "kernels/attention_wgmma_fwd_cuda.h"
#include "kernels/dev/attention/variants.h"

namespace qsft::dev {

void attention_fwd_dev05b(const cuda::AttentionShape& s, const void* q, const void* k, const void* v, void* out,
                          float* lse, void* stream) {
  cuda::wgfwd::fwd<3>(s, q, k, v, out, lse, stream);
}

}  // namespace qsft::dev
