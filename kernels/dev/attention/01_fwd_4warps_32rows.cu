// Variant 01 of the attention forward: FlashAttention-2's layout, 4 warps x 32 query rows (two m16 row tiles per
// warp, 128-row query tiles). Each K/V fragment loaded by ldmatrix feeds two MMAs instead of one (half the
// shared-memory reads per FLOP of the production 8 warps x 16 rows), at the cost of ~250 registers per thread (O
// and S doubled; Q fragments re-read from shared memory per k-step) and 4 warps per block to hide latency. Key
// tiles: 32 at D = 128 (64 spilled 188 bytes: O alone is 128 registers; 68 KiB of shared memory), 64 at D = 64.
// Backward: the production one.
#include "kernels/attention_mma_fwd_cuda.h"
#include "kernels/dev/attention/variants.h"

namespace qsft::dev {

void attention_fwd_dev01(const cuda::AttentionShape& shape, const void* q, const void* k, const void* v, void* out,
                         float* lse, void* stream) {
  if (shape.T == 0) return;
  const cuda::AttentionShape s = cuda::attn::check_shape(shape, {q, k, v, out});
  if (s.D <= 64)
    cuda::attn::launch_fwd_mma<64, 4, 2, 64>(s, q, k, v, out, lse, stream);
  else
    cuda::attn::launch_fwd_mma<128, 4, 2, 32>(s, q, k, v, out, lse, stream);
}

}  // namespace qsft::dev
