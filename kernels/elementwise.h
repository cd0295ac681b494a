// Elementwise ops on flat fp32 arrays.
#pragma once
#include <cstdint>

namespace qsft::cpu {

void add_inplace(float* y, const float* x, int64_t n);  // y += x   [n]
void scale_inplace(float* y, float s, int64_t n);       // y *= s   [n]

// y = keep ? x * (1 / (1 - p)) : 0 with keep = (u(seed, i) >= p), u = rng::uniform16, the counter-based uniform of
// kernels/rng.h (so keep ~ Bernoulli(1 - p), a pure function of (seed, i)). 0 <= p < 1; p == 0 copies. x, y [n]
// (may alias).
void dropout(const float* x, int64_t n, float p, uint64_t seed, float* y);
// y += dropout(x), the same mask and scaling in one pass (the LoRA backward's dx += mask (du A) / (1 - p)).
void dropout_add(const float* x, int64_t n, float p, uint64_t seed, float* y);

}  // namespace qsft::cpu
