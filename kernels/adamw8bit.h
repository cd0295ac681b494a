// bitsandbytes' 8-bit blockwise AdamW (TRL's optim="adamw_8bit": bnb.optim.AdamW(optim_bits=8), the CUDA kernel
// kOptimizer8bit2StateBlockwise). The moments are stored as one byte per parameter, a code into a 256-entry
// dynamic map (signed for m, unsigned for v), times a per-block absmax over blocks of 256 parameters. Per block:
//   s1 = map_m[m] * absmax_m;  s1 = s1 b1 + (1 - b1) g              (a non-finite g: s1 = s2 = 0, p kept)
//   s2 = map_v[v] * absmax_v;  s2 = s2 b2 + ((1 - b2) g) g
//   absmax_m, absmax_v = max |s1|, max |s2| over the block (a partial last block also sees its padding lanes,
//                        loaded as m = 128, v = 0, g = 0, as the kernel does)
//   p = p + step_size * (s1 / (sqrt(s2) + c2 eps)),  step_size = -lr c2 / c1,  c1 = 1 - b1^t, c2 = sqrt(1 - b2^t)
//   p = p (1 - lr wd)                                 (weight decay after the update, as bitsandbytes; only the
//                                                      first `decayed` parameters of the call: full fine-tuning's
//                                                      no-decay group may begin inside a block, whose absmax
//                                                      stays shared since decay touches p only)
//   m = quantize(map_m, s1 / absmax_m), kept on the sign of s1;  v = quantize(map_v, s2 / absmax_v)
// quantize is the kernel's binary search over the sorted map with its midpoint rounding (quantize_2D).
// Rounding: fp32 operations, each rounded (no fused multiply-add), IEEE division and sqrt; b1, b2, lr, wd, eps are
// fp32 as the kernel's arguments; c1 and c2 are computed in double from them and rounded once (the kernel's
// __powf and __fdividef are approximations; here CPU and GPU give the same bits). Blocks are counted from the
// first parameter of the call, so a shard that starts on a block boundary is updated alone.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>

#include "kernels/adamw.h"

namespace qsft::cpu {

constexpr int64_t kAdamW8bitBlock = 256;

// bitsandbytes' create_dynamic_map(signed): sorted codes in [-1, 1] (signed) or [0, 1]. Each dynamic-exponent
// entry is 10^-e times the midpoint of two points of linspace(0.1, 1), computed in double and rounded once
// (bitsandbytes computes them in fp32 through torch: up to 2 ulps apart on some entries, see the golden test).
std::array<float, 256> dynamic_map(bool is_signed);

// The code of x in a sorted 256-entry map: quantize_2D's seven-step binary search from 127, then the nearer of
// the two neighbours by the midpoint (a NaN, 0/0 in an all-zero block, gives code 0).
uint8_t quantize_code(const float* map, float x, bool is_signed);

// The 8-bit moments of n parameters: codes [n], absmax [ceil(n / 256)], and the two maps.
struct AdamW8bitState {
  uint8_t* m;
  uint8_t* v;
  float* absmax_m;
  float* absmax_v;
  const float* map_m;  // dynamic_map(true)
  const float* map_v;  // dynamic_map(false)
};

// The per-call scalars (fp32, as the kernel's arguments), shared by the CPU and CUDA implementations.
struct AdamW8bitScalars {
  float beta1, beta2, one_minus_beta1, one_minus_beta2, eps_c2, step_size, decay;
  bool weight_decay;
  int64_t decayed;  // parameters [0, decayed) of the call get the weight decay, the rest none
};
// Inline: the CUDA library uses it too, and links before the CPU one. c1 = 1 - beta1^t, c2 = sqrt(1 - beta2^t);
// step_size = -lr c2 / c1 and eps_c2 = eps c2 (the kernel's form of lr / c1 * m / (sqrt(v) / c2 + eps)).
inline AdamW8bitScalars adamw8bit_scalars(const AdamWHyper& h, int64_t decayed) {
  const float b1 = float(h.beta1), b2 = float(h.beta2), lr = float(h.lr), wd = float(h.weight_decay);
  const double t = double(h.step);
  const float c1 = float(1.0 - std::pow(double(b1), t)), c2 = float(std::sqrt(1.0 - std::pow(double(b2), t)));
  return {b1, b2, 1.0f - b1, 1.0f - b2, c2 * float(h.eps), (-lr * c2) / c1, 1.0f - lr * wd, wd > 0.0f, decayed};
}

// p, g [n] F32; s updated in place. The weight decay applies to p[0, decayed) only (decayed = n: all).
void adamw8bit_step(float* p, const float* g, const AdamW8bitState& s, int64_t n, const AdamWHyper& hyper,
                    int64_t decayed);

}  // namespace qsft::cpu
