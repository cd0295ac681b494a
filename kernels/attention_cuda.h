// CUDA flash-style attention (kernels/attention.h is the reference): causal within each packed sequence
// (cu_seqlens), GQA without copying K/V (query head h reads kv head h / (n / nkv)), bf16 q/k/v/out/gradients,
// fp32 softmax statistics (lse [n, T]), head_dim any multiple of 8 up to 128. Tiles of queries and keys stream through
// shared memory with an online softmax: no T x T matrix exists anywhere. The backward is deterministic by
// construction (no atomics): dK/dV are computed key-major and dQ query-major, each element by one warp.
// Three implementations: "mma" (attention_mma*.cu: mma.sync + ldmatrix, register accumulators, cp.async double
// buffering; instantiated for head_dim 64 and 128), "wmma" (attention.cu, attention_bwd.cu: WMMA with
// shared-memory accumulators; 16, 32, 64, 128) and "wgmma" (attention_wgmma*.cu: Hopper warpgroup MMA from
// 128-byte-swizzled shared tiles, sm_90a only; 64 and 128; opt-in until a GPU run has validated and timed it). A
// head dim between runs on the next instantiated one up, its missing columns zero-filled in shared memory
// (predicated 16-byte loads) and not stored, scale = D^-0.5 of the real D. attention_fwd/attention_bwd pick by the
// environment variable QSFT_ATTENTION=mma (default) | wmma | wgmma, read at each call (kernels/attention_impl.h).
// Why not above 128: the backward keeps a warp's dK and dV rows [16 x D] in fp32 registers (D registers per thread
// for both), which at D = 256 leaves nothing for the scores and spills; D > 128 needs a column-split dK/dV pass
// (no Qwen model has one: Qwen2.5 64/128, Qwen3 128). Decode attention (decode_attention_cuda.h) takes up to 256.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/attention_impl.h"

namespace qsft::cuda {

struct AttentionShape {
  int64_t T = 0;                        // tokens of the packed batch
  int64_t n = 0;                        // query heads
  int64_t nkv = 0;                      // kv heads (divides n)
  int64_t D = 0;                        // head dim
  const int32_t* cu_seqlens = nullptr;  // I32 [num_seqs + 1] on the device
  int num_seqs = 0;
  // Elements between consecutive tokens' rows of q and dq, k and dk, v and dv (0: packed, n*D or nkv*D): strided
  // head views, e.g. the column slices of a fused [T, (n + 2 nkv) D] QKV output; multiples of 8. out, dout packed.
  int64_t q_ld = 0, k_ld = 0, v_ld = 0;
};

constexpr int64_t kAttentionMaxHeadDim = 128;
// D % 8 == 0 and 8 <= D <= kAttentionMaxHeadDim (both implementations).
bool attention_supports_head_dim(int64_t D);

// QSFT_ATTENTION (unset: mma); anything but mma/wmma/wgmma is an error naming the variable; wgmma on a device that
// is not compute capability 9.0 is an error naming the variable and the device.
AttentionImpl attention_impl_from_env();
// Empty when the current device runs the wgmma kernels, else the error (wgmma_device_refusal), `who` first.
std::string attention_wgmma_unsupported_reason(const std::string& who);

// Tile configuration of the mma kernels (attention_mma.cu, attention_mma_bwd.cu): Large takes 54 / 68 KiB of shared
// memory per block forward and 64 / 112 KiB backward (D = 64 / 128), Small 45 / 85 and 41 / 73 (it fits the 99 KiB
// of RTX 3090/4090, sm_86/89). Auto: Large where two of its blocks fit an SM (faster on an H200 in both passes),
// Small otherwise, unless QSFT_ATTENTION_TILES=small (or =large) forces one (the GPU test runs both this way, Large
// where attention_mma_tiles_fit).
enum class AttentionTiles { Auto, Large, Small };

// Backward of the mma path: Deterministic (the default; every gradient element summed by one warp in a fixed
// order, bitwise repeatable, so kill/resume equality holds) or AtomicDq (fast mode: dQ accumulated with fp32
// atomics inside the dK/dV pass, 5 products instead of 7, run-to-run differences in dQ's last bits). Auto reads
// QSFT_ATTENTION_BWD=deterministic (default) | atomic.
enum class AttentionBwdMode { Auto, Deterministic, AtomicDq };
AttentionBwdMode attention_bwd_mode_from_env();

// q [T, n, D], k, v [T, nkv, D] (row strides s.q_ld, k_ld, v_ld), out [T, n, D] (bf16); lse F32 [n, T].
void attention_fwd(const AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse,
                   void* stream);

// Device scratch the backward needs: delta = rowsum(dout * out), F32 [n, T], and in AtomicDq mode an F32 [T, n, D]
// dQ accumulator.
size_t attention_bwd_scratch_bytes(const AttentionShape& s, AttentionBwdMode mode = AttentionBwdMode::Auto);
// dq [T, n, D], dk, dv [T, nkv, D] (bf16, the row strides of q, k, v) overwritten.
void attention_bwd(const AttentionShape& s, const void* dout, const void* q, const void* k, const void* v,
                   const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream);

// The implementations behind attention_fwd/attention_bwd, same arguments (benchmarks and tests call them).
void attention_fwd_wmma(const AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse,
                        void* stream);
void attention_bwd_wmma(const AttentionShape& s, const void* dout, const void* q, const void* k, const void* v,
                        const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream);
void attention_fwd_mma(const AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse,
                       void* stream, AttentionTiles tiles = AttentionTiles::Auto);
void attention_bwd_mma(const AttentionShape& s, const void* dout, const void* q, const void* k, const void* v,
                       const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream,
                       AttentionTiles tiles = AttentionTiles::Auto, AttentionBwdMode mode = AttentionBwdMode::Auto);
// wgmma (attention_wgmma*.cu): throw on a device that is not compute capability 9.0. The backward takes the mma
// path's modes and scratch (attention_bwd_scratch_bytes): Deterministic runs a dK/dV pass and a dQ pass (7
// products), AtomicDq adds dQ by fp32 atomics inside the dK/dV pass (5 products).
void attention_fwd_wgmma(const AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse,
                         void* stream);
void attention_bwd_wgmma(const AttentionShape& s, const void* dout, const void* q, const void* k, const void* v,
                         const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream,
                         AttentionBwdMode mode = AttentionBwdMode::Auto);
// Shared memory per block of the mma kernels (the largest of the pass) for head_dim D, Large or Small tiles.
size_t attention_fwd_mma_smem(int64_t D, AttentionTiles tiles);
size_t attention_bwd_mma_smem(int64_t D, AttentionTiles tiles);
// Whether this device's shared memory per block (opt-in) holds both passes' blocks of these tiles at head_dim D
// (Large at D > 64 does not on the 99 KiB GPUs: forcing it there throws).
bool attention_mma_tiles_fit(int64_t D, AttentionTiles tiles);

}  // namespace qsft::cuda
