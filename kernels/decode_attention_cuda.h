// CUDA launchers of decode attention (kernels/decode_attention.h is the reference; same shapes and meaning).
// Tensors of dtype dt (F32 or BF16) on the device, slot and len I32 [B] on the device; head_dim <= 256.
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/base/tensor.h"
#include "kernels/decode_attention.h"

namespace qsft::cuda {

constexpr int64_t kDecodeAttentionMaxHeadDim = 256;

void kv_cache_append(DType dt, const void* k_new, const void* v_new, const int32_t* slot, const int32_t* len,
                     const cpu::DecodeAttentionDims& d, void* k_cache, void* v_cache, void* stream);

// Split-K (flash-decoding): when the B * n (row, query head) pairs are too few blocks to fill the GPU, each row's
// keys are split into this many chunks (by the cache length S: at least kDecodeMinSplitKeys keys a chunk), each a
// block with its own max and sum; a combine step merges them. 1 = no split.
constexpr int64_t kDecodeMinSplitKeys = 256;
int decode_attention_splits(const cpu::DecodeAttentionDims& d);
// Device scratch decode_attention needs for the split partial results: the same for every call with head dim D
// (a bound over B), so a growable scratch buffer grows once.
size_t decode_attention_scratch_bytes(const cpu::DecodeAttentionDims& d);

// One block per (row, query head, split): its warps split the split's keys, each lane holds D/32 of the output
// with an online softmax; the warps' partial results are combined in shared memory, then (split > 1) the splits'
// in a second kernel. fp32 arithmetic. scratch: decode_attention_scratch_bytes(d) bytes on the device.
void decode_attention(DType dt, const void* q, const void* k_cache, const void* v_cache, const int32_t* slot,
                      const int32_t* len, const cpu::DecodeAttentionDims& d, void* out, void* scratch, void* stream);

}  // namespace qsft::cuda
