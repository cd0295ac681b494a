// Rotary position embedding, rotate_half form (Qwen2/Qwen3, transformers): with h = D/2, for i < h
//   angle = float(pos) * inv_freq[i], c = cos(angle) * scale, s = sin(angle) * scale   (fp32)
//   out[i] = x[i] * c - x[i+h] * s,   out[i+h] = x[i+h] * c + x[i] * s
// inv_freq [D/2] and scale (transformers' attention_scaling: YaRN's mscale, 1 otherwise) come from the model's
// RoPE configuration (engine/model/rope_freqs.h); plain RoPE has inv_freq[i] = 1 / theta^(float(2i) / D).
#pragma once
#include <cstdint>
#include <vector>

namespace qsft::cpu {

// Plain RoPE's inverse frequencies as torch computes them: int arange -> fp32, / D, theta ** that, 1 / that.
std::vector<float> rope_default_inv_freq(int64_t D, double theta);

// x [T, n, D] rotated in place by the angles of positions[t]; positions [T], inv_freq [D/2]. Token t's heads start
// at x + t * ld (ld >= n * D: a strided head view, e.g. the q and k columns of a fused QKV output; n * D: packed).
void rope_fwd(float* x, const int32_t* positions, int64_t T, int64_t n, int64_t D, int64_t ld, const float* inv_freq,
              float scale);

// The backward of a scaled rotation is the transposed one (angle -> -angle, same scale), in place on dx [T, n, D]
// (token rows ld apart).
void rope_bwd(float* dx, const int32_t* positions, int64_t T, int64_t n, int64_t D, int64_t ld, const float* inv_freq,
              float scale);

}  // namespace qsft::cpu
