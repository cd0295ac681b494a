// Attention forward on mma.sync: the production tile configurations of kernels/attention_mma_fwd_cuda.h.
// Large (H100/H200/A100): 8 warps x 16 rows (128-row query tiles), 64-key tiles, 102 KiB of shared memory at
// D = 128. Why 16 rows per warp with 8 warps rather than FA2's 4 warps x 32 rows: O (64 registers at D = 128), S
// (32) and Q (32) fit in ~200 registers with no spill, and 8 warps hide ldmatrix/exp2 latency; the price is that
// K/V fragments are read from shared memory once per 16 rather than 32 query rows. The 32-row layout is
// kernels/dev/attention/01_fwd_4warps_32rows.cu, to measure against.
// Small (99 KiB GPUs, sm_86/89): 4 warps x 16 rows, 85 KiB.
// Head dims: D = 64 and 128 are instantiated; any other multiple of 8 runs on the next one up (8..64 on 64, 72..128
// on 128) with zero-padded columns.
#include "kernels/attention_mma_fwd_cuda.h"

namespace qsft::cuda {

using namespace attn;

size_t attention_fwd_mma_smem(int64_t D, AttentionTiles tiles) {
  const bool large = tiles == AttentionTiles::Large;
  if (D <= 64) return large ? FwdTiles<64, 8, 1, 64>::smem() : FwdTiles<64, 4, 1, 64>::smem();
  return large ? FwdTiles<128, 8, 1, 64>::smem() : FwdTiles<128, 4, 1, 64>::smem();
}

void attention_fwd_mma(const AttentionShape& shape, const void* q, const void* k, const void* v, void* out, float* lse,
                       void* stream, AttentionTiles tiles) {
  if (shape.T == 0) return;
  const AttentionShape s = check_shape(shape, {q, k, v, out});
  QSFT_CHECK(attention_supports_head_dim(s.D), "attention_fwd_mma: head_dim must be a multiple of 8 up to 128");
  const bool large = resolve_tiles(s.D, tiles, true) == AttentionTiles::Large;
  if (s.D <= 64)
    large ? launch_fwd_mma<64, 8, 1, 64>(s, q, k, v, out, lse, stream)
          : launch_fwd_mma<64, 4, 1, 64>(s, q, k, v, out, lse, stream);
  else
    large ? launch_fwd_mma<128, 8, 1, 64>(s, q, k, v, out, lse, stream)
          : launch_fwd_mma<128, 4, 1, 64>(s, q, k, v, out, lse, stream);
}

}  // namespace qsft::cuda
