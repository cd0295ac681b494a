// CUDA launchers of RoPE (kernels/rope.h is the reference): rotate_half on x [T, n, D] in place (token rows ld >= n*D
// elements apart: a strided head view), dtype dt (F32 or BF16), angles positions[t] * inv_freq[i] in fp32 from the
// per-sequence positions (I32 [T]) and the inverse frequencies (F32 [D/2]), both on the device; cos and sin scaled by
// `scale`.
#pragma once
#include <cstdint>

#include "engine/base/tensor.h"

namespace qsft::cuda {

void rope_fwd(DType dt, void* x, const int32_t* positions, int64_t T, int64_t n, int64_t D, int64_t ld,
              const float* inv_freq, float scale, void* stream);
// The transposed rotation (angle -> -angle, same scale) applied to the gradient in place.
void rope_bwd(DType dt, void* dx, const int32_t* positions, int64_t T, int64_t n, int64_t D, int64_t ld,
              const float* inv_freq, float scale, void* stream);

}  // namespace qsft::cuda
