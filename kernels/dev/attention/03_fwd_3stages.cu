// Variant 03 of the attention forward: the production kernel (attention_mma_fwd_cuda.h) with three K/V stages
// instead of two: tile t + 2 loads into the stage of tile t - 1, which every warp has left once it passes tile t's
// barrier, so one block barrier per key tile instead of two (with 8 warps in one block per SM, each barrier waits
// for the slowest warp). The shared memory this costs is free where registers already limit the SM: Large at
// D = 128 (139 KiB, one block per SM either way) and Small at D = 64 (65 KiB, three blocks per SM either way).
#include "kernels/attention_mma_fwd_cuda.h"
#include "kernels/dev/attention/variants.h"

namespace qsft::dev {

void attention_fwd_dev03(const cuda::AttentionShape& shape, const void* q, const void* k, const void* v, void* out,
                         float* lse, void* stream) {
  if (shape.T == 0) return;
  const cuda::AttentionShape s = cuda::attn::check_shape(shape, {q, k, v, out});
  if (s.D <= 64)
    cuda::attn::launch_fwd_mma<64, 4, 1, 64, 0, 3>(s, q, k, v, out, lse, stream);
  else
    cuda::attn::launch_fwd_mma<128, 8, 1, 64, 0, 3>(s, q, k, v, out, lse, stream);
}

}  // namespace qsft::dev
