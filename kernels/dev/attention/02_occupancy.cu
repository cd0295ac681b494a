// Variant 02 of the attention: the production kernel templates (attention_mma_fwd_cuda.h, attention_mma_bwd_cuda.h)
// with more blocks per SM or longer steps. Why: on the H200 (bench/gpu-runs/2026-11-30-79882bf) the Small tiles (4
// warps, two blocks per SM) beat the Large ones (8 warps, one block) in 3 of 4 passes although they read K/V twice
// as often: the kernels are bound by latency and barriers (a block's warps wait for its slowest at every tile),
// not by shared-memory or tensor throughput (~35% of mma.sync peak). So:
//   fwd   D = 64: 4 warps x 16 rows, 64-key tiles, <= 128 registers for 4 blocks (16 warps) per SM (46 KiB each);
//         D = 128: 4 warps, 32-key tiles (52 KiB, half the score registers), <= 168 registers for 3 blocks per SM.
//   bwd   dK/dV steps of 64 queries instead of 32 (half the barriers and pipeline steps per key block; 4 warps);
//         dQ 4 warps x 64-key steps; ptxas's register choice (02b).
//   bwd   the Small configuration with the dQ pass's q and dout fragments in registers (02c: a quarter fewer
//         ldmatrix per key tile, 1 block per SM fewer: 3 -> 2 at D = 128, 4 -> 3 at D = 64).
// Each pass has its own variant (02a forward, 02b/c backward: the production launcher for the other pass).
#include "kernels/attention_mma_bwd_cuda.h"
#include "kernels/attention_mma_fwd_cuda.h"
#include "kernels/dev/attention/variants.h"

namespace qsft::dev {

void attention_fwd_dev02a(const cuda::AttentionShape& shape, const void* q, const void* k, const void* v, void* out,
                          float* lse, void* stream) {
  if (shape.T == 0) return;
  const cuda::AttentionShape s = cuda::attn::check_shape(shape, {q, k, v, out});
  if (s.D <= 64)
    cuda::attn::launch_fwd_mma<64, 4, 1, 64, 4>(s, q, k, v, out, lse, stream);
  else
    cuda::attn::launch_fwd_mma<128, 4, 1, 32, 3>(s, q, k, v, out, lse, stream);
}

void attention_bwd_dev02c(const cuda::AttentionShape& shape, const void* dout, const void* q, const void* k,
                          const void* v, const void* out, const float* lse, void* dq, void* dk, void* dv,
                          void* scratch, void* stream) {
  if (shape.T == 0) return;
  const cuda::AttentionShape s = cuda::attn::check_shape(shape, {dout, q, k, v, out, dq, dk, dv});
  cuda::attn::bwd_with<cuda::attn::BwdConfig<4, 32, 4, 32, 0, true>>(s, dout, q, k, v, out, lse, dq, dk, dv, scratch,
                                                                     cuda::as_stream(stream), false);
}

void attention_bwd_dev02b(const cuda::AttentionShape& shape, const void* dout, const void* q, const void* k,
                          const void* v, const void* out, const float* lse, void* dq, void* dk, void* dv,
                          void* scratch, void* stream) {
  if (shape.T == 0) return;
  const cuda::AttentionShape s = cuda::attn::check_shape(shape, {dout, q, k, v, out, dq, dk, dv});
  cuda::attn::bwd_with<cuda::attn::BwdConfig<4, 64, 4, 64>>(s, dout, q, k, v, out, lse, dq, dk, dv, scratch,
                                                            cuda::as_stream(stream), false);
}

}  // namespace qsft::dev
