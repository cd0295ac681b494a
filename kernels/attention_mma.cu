// Attention forward on mma.sync: the production tile configurations of kernels/attention_mma_fwd_cuda.h.
// Large: FlashAttention-2's layout, 4 warps x 32 query rows (128-row query tiles; each K/V fragment feeds two MMAs,
// half the shared-memory reads per FLOP), 64-key tiles at D = 64 and 32-key tiles at D = 128 (54 / 68 KiB; 236 /
// 244 registers on sm_90, no spill). Measured on the H200 (4 x 4096 causal,
// bench/gpu-runs/2026-11-30-45ffbc3/bench.log, then kernels/dev/attention/01): 1.768 ms at the 7B shape and
// 0.528 ms at the 0.5B one, against 2.136 / 0.718 for the 8 warps x 16 rows it replaced and 1.926 / 0.543 for Small.
// Small: 4 warps x 16 rows, 64-key tiles, where two Large blocks do not fit an SM (attention_dispatch.cu).
// Head dims: D = 64 and 128 are instantiated; any other multiple of 8 runs on the next one up (8..64 on 64, 72..128
// on 128) with zero-padded columns.
#include "kernels/attention_mma_fwd_cuda.h"

namespace qsft::cuda {

using namespace attn;

size_t attention_fwd_mma_smem(int64_t D, AttentionTiles tiles) {
  const bool large = tiles == AttentionTiles::Large;
  if (D <= 64) return large ? FwdTiles<64, 4, 2, 64>::smem() : FwdTiles<64, 4, 1, 64>::smem();
  return large ? FwdTiles<128, 4, 2, 32>::smem() : FwdTiles<128, 4, 1, 64>::smem();
}

void attention_fwd_mma(const AttentionShape& shape, const void* q, const void* k, const void* v, void* out, float* lse,
                       void* stream, AttentionTiles tiles) {
  if (shape.T == 0) return;
  const AttentionShape s = check_shape(shape, {q, k, v, out});
  QSFT_CHECK(attention_supports_head_dim(s.D), "attention_fwd_mma: head_dim must be a multiple of 8 up to 128");
  const bool large = resolve_tiles(s.D, tiles, true) == AttentionTiles::Large;
  if (s.D <= 64)
    large ? launch_fwd_mma<64, 4, 2, 64>(s, q, k, v, out, lse, stream)
          : launch_fwd_mma<64, 4, 1, 64>(s, q, k, v, out, lse, stream);
  else
    large ? launch_fwd_mma<128, 4, 2, 32>(s, q, k, v, out, lse, stream)
          : launch_fwd_mma<128, 4, 1, 64>(s, q, k, v, out, lse, stream);
}

}  // namespace qsft::cuda
