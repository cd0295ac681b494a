// CUDA launchers of decode attention (kernels/decode_attention.h is the reference; same shapes and meaning).
// Tensors of dtype dt (F32 or BF16) on the device, slot and len I32 [B] on the device; head_dim <= 256.
#pragma once
#include <cstdint>

#include "engine/base/tensor.h"
#include "kernels/decode_attention.h"

namespace qsft::cuda {

constexpr int64_t kDecodeAttentionMaxHeadDim = 256;

void kv_cache_append(DType dt, const void* k_new, const void* v_new, const int32_t* slot, const int32_t* len,
                     const cpu::DecodeAttentionDims& d, void* k_cache, void* v_cache, void* stream);

// One block per (row, query head); its warps split the keys, each lane holds D/32 of the output with an online
// softmax; the warps' partial results are combined in shared memory. fp32 arithmetic.
void decode_attention(DType dt, const void* q, const void* k_cache, const void* v_cache, const int32_t* slot,
                      const int32_t* len, const cpu::DecodeAttentionDims& d, void* out, void* stream);

}  // namespace qsft::cuda
