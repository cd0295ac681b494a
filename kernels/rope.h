// Rotary position embedding, rotate_half form (Qwen2 / transformers): with h = D/2, for i < h
//   inv_freq[i] = 1 / theta^(float(2i) / D)   (fp32, as torch: int arange -> float, / D, pow)
//   angle = float(pos) * inv_freq[i], c = cos(angle), s = sin(angle)   (fp32)
//   out[i] = x[i] * c - x[i+h] * s,   out[i+h] = x[i+h] * c + x[i] * s
#pragma once
#include <cstdint>

namespace qsft::cpu {

// x [T, n, D] rotated in place by the angles of positions[t]; positions [T].
void rope_fwd(float* x, const int32_t* positions, int64_t T, int64_t n, int64_t D, float theta);

// The backward of a rotation is the inverse rotation (angle -> -angle), applied in place to dx [T, n, D].
void rope_bwd(float* dx, const int32_t* positions, int64_t T, int64_t n, int64_t D, float theta);

}  // namespace qsft::cpu
