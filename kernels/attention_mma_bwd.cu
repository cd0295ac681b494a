// Attention backward on mma.sync (the kernels: attention_mma_bwd_cuda.h): the production tile configurations, the
// backward mode (deterministic or atomic dQ) and the scratch it needs.
#include <cstdlib>
#include <cstring>

#include "kernels/attention_mma_bwd_cuda.h"

namespace qsft::cuda {

using namespace attn;

namespace {

// Large: dK/dV blocks of 4 warps stepping over 64 queries (half the barriers and pipeline steps per key block of
// 32-query steps), dQ blocks of 4 warps over 64 keys. Measured on the H200 (4 x 4096 causal, bench/gpu-runs/
// 2026-11-30-45ffbc3/bench.log, then kernels/dev/attention/02b): 5.653 ms at the 7B shape and 1.568 ms at the 0.5B
// one, against 6.299 / 1.793 for the 8-warp, 32-query Large it replaced and 5.883 / 1.889 for Small. Small fits
// 99 KiB GPUs (sm_86/89); Auto picks Large where two of its blocks fit an SM (attention_dispatch.cu).
using LargeBwd = BwdConfig<4, 64, 4, 64>;
using SmallBwd = BwdConfig<4, 32, 4, 32>;

// dq = bf16(scale dq_acc), element-wise over [T, n, D]: dq_acc packed (rows of `row` = n D), dq rows ld apart.
__global__ void dq_from_acc_kernel(const float* dq_acc, int64_t count, int64_t row, int64_t ld, float scale, bf16* dq) {
  QSFT_GRID_STRIDE(i, count) dq[i / row * ld + i % row] = __float2bfloat16_rn(dq_acc[i] * scale);
}

}  // namespace

void attn::dq_from_acc(const AttentionShape& s, const float* dq_acc, bf16* dq, cudaStream_t st) {
  const int64_t count = s.T * s.n * s.D;
  dq_from_acc_kernel<<<grid_for(count), kThreads, 0, st>>>(dq_acc, count, s.n * s.D, s.q_ld,
                                                           1.0f / std::sqrt(float(s.D)), dq);
  QSFT_CUDA_CHECK_LAUNCH();
}

size_t attention_bwd_mma_smem(int64_t D, AttentionTiles tiles) {
  const bool large = tiles == AttentionTiles::Large;
  if (D <= 64) return large ? LargeBwd::smem<64>() : SmallBwd::smem<64>();
  return large ? LargeBwd::smem<128>() : SmallBwd::smem<128>();
}

AttentionBwdMode attention_bwd_mode_from_env() {
  const char* e = std::getenv("QSFT_ATTENTION_BWD");
  if (!e || !*e || std::strcmp(e, "deterministic") == 0) return AttentionBwdMode::Deterministic;
  if (std::strcmp(e, "atomic") == 0) return AttentionBwdMode::AtomicDq;
  throw std::invalid_argument(std::string("QSFT_ATTENTION_BWD=") + e + ": expected deterministic or atomic");
}

size_t attention_bwd_scratch_bytes(const AttentionShape& s, AttentionBwdMode mode) {
  if (mode == AttentionBwdMode::Auto) mode = attention_bwd_mode_from_env();
  const bool atomic = mode == AttentionBwdMode::AtomicDq && attention_supports_head_dim(s.D);
  return delta_bytes(s) + (atomic ? size_t(s.T * s.n * s.D) * sizeof(float) : 0);
}

void attention_bwd_mma(const AttentionShape& shape, const void* dout, const void* q, const void* k, const void* v,
                       const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream,
                       AttentionTiles tiles, AttentionBwdMode mode) {
  if (shape.T == 0) return;
  const AttentionShape s = check_shape(shape, {dout, q, k, v, out, dq, dk, dv});
  QSFT_CHECK(attention_supports_head_dim(s.D), "attention_bwd_mma: head_dim must be a multiple of 8 up to 128");
  if (mode == AttentionBwdMode::Auto) mode = attention_bwd_mode_from_env();
  const bool atomic = mode == AttentionBwdMode::AtomicDq;
  if (resolve_tiles(s.D, tiles, false) == AttentionTiles::Large)
    bwd_with<LargeBwd>(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, as_stream(stream), atomic);
  else
    bwd_with<SmallBwd>(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, as_stream(stream), atomic);
}

}  // namespace qsft::cuda
