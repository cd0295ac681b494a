// The per-element math of the 8-bit AdamW (kernels/adamw8bit.h), written once for the CPU reference and the CUDA
// kernel. On the device every operation is an explicitly rounded intrinsic, so nvcc cannot contract a * b + c into
// an fma: both backends round each operation alone and give the same bits.
#pragma once
#include <cstdint>

#include "kernels/adamw8bit.h"

#if defined(__CUDACC__)
#define QSFT_HD8 __host__ __device__ __forceinline__
#else
#define QSFT_HD8 inline
#endif

namespace qsft::adamw8bit {

QSFT_HD8 float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
QSFT_HD8 float add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
QSFT_HD8 float div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
QSFT_HD8 float root(float a) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(a);
#else
  return __builtin_sqrtf(a);
#endif
}
QSFT_HD8 float absf(float a) { return a < 0.0f ? -a : (a == 0.0f ? 0.0f : a); }
QSFT_HD8 float maxf(float a, float b) { return b > a ? b : a; }  // as fmaxf: a NaN b leaves the running max a
QSFT_HD8 bool finite(float a) { return a - a == 0.0f; }          // false for NaN and +-inf
QSFT_HD8 bool sign_bit(float a) { return a < 0.0f || (a == 0.0f && 1.0f / a < 0.0f); }

// quantize_2D: seven halvings from code 127 keep the codes bracketing x (their values start at the map's range,
// -1 or 0, and 1), then x goes to the nearer of the final code and its bracket, split at their midpoint.
QSFT_HD8 uint8_t quantize(const float* map, float x, bool is_signed) {
  int pivot = 127, upper_pivot = 255, lower_pivot = 0;
  float lower = is_signed ? -1.0f : 0.0f, upper = 1.0f, val = map[pivot];
  for (int i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lower_pivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upper_pivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = map[pivot];
  }
  if (x > val) return uint8_t(x > mul(add(upper, val), 0.5f) ? upper_pivot : pivot);
  return uint8_t(x < mul(add(lower, val), 0.5f) ? lower_pivot : pivot);
}

// The first moment's code, moved one step when rounding flipped its sign (the kernel's sign check; the byte
// wraps as the kernel's unsigned char does).
QSFT_HD8 uint8_t quantize_m(const float* map, float s1, float absmax) {
  uint8_t c = quantize(map, div(s1, absmax), true);
  if (sign_bit(map[c]) != sign_bit(s1)) c = uint8_t(s1 > 0.0f ? c + 1 : c - 1);
  return c;
}

struct Moments {
  float s1, s2;
};

// The moments after this step from their stored codes; zero for a non-finite gradient.
QSFT_HD8 Moments update_moments(float g, float m_code_value, float absmax_m, float v_code_value, float absmax_v,
                                const cpu::AdamW8bitScalars& k) {
  if (!finite(g)) return {0.0f, 0.0f};
  const float s2 = add(mul(mul(v_code_value, absmax_v), k.beta2), mul(mul(k.one_minus_beta2, g), g));
  const float s1 = add(mul(mul(m_code_value, absmax_m), k.beta1), mul(k.one_minus_beta1, g));
  return {s1, s2};
}

// p + step_size * s1 / (sqrt(s2) + c2 eps), then the weight decay when the call's parameter i is in the decayed
// range; a non-finite gradient leaves p.
QSFT_HD8 float update_param(float p, float g, Moments s, const cpu::AdamW8bitScalars& k, int64_t i) {
  if (!finite(g)) return p;
  p = add(p, mul(k.step_size, div(s.s1, add(root(s.s2), k.eps_c2))));
  return k.weight_decay && i < k.decayed ? mul(p, k.decay) : p;
}

}  // namespace qsft::adamw8bit
