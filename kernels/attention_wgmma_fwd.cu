// The wgmma attention forward (QSFT_ATTENTION=wgmma; the kernel: attention_wgmma_fwd_cuda.h), two K/V stages.
// Why two and not three (kernels/dev/attention/05b_*, predicted 5-10 % faster): 161 instead of 225 KiB of shared
// memory at D = 128 (room left under the 227 KiB limit) and each warpgroup retiring its P V before the next barrier,
// the simpler synchronisation for the first GPU run to validate; the bench times 05b beside it.
#include "kernels/attention_wgmma_fwd_cuda.h"

namespace qsft::cuda {

void attention_fwd_wgmma(const AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse,
                         void* stream) {
  wgfwd::fwd<2>(s, q, k, v, out, lse, stream);
}

}  // namespace qsft::cuda
