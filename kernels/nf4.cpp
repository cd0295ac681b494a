#include "kernels/nf4.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <vector>

namespace qsft::cpu {
namespace {

// bitsandbytes' get_4bit_type("nf4"): the fp32 values of its table.
constexpr float kNf4[16] = {-1.0f,
                            -0.6961928009986877f,
                            -0.5250730514526367f,
                            -0.39491748809814453f,
                            -0.28444138169288635f,
                            -0.18477343022823334f,
                            -0.09105003625154495f,
                            0.0f,
                            0.07958029955625534f,
                            0.16093020141124725f,
                            0.24611230194568634f,
                            0.33791524171829224f,
                            0.44070982933044434f,
                            0.5626170039176941f,
                            0.7229568362236023f,
                            1.0f};
// get_4bit_type("fp4"): [0, 0.0625, 8, 12, 4, 6, 2, 3] for the codes 0b0000..0b0111, negated for 0b1000..0b1111
// (its "-0" is the integer 0: code 0b1000 is +0, as on its CPU; its CUDA kernel makes it -0),
// divided by the largest (12) in fp32.
constexpr float kFp4[16] = {0.0f, 0.0625f / 12,  8.0f / 12,  1.0f,  4.0f / 12,  6.0f / 12,  2.0f / 12,  3.0f / 12,
                            0.0f, -0.0625f / 12, -8.0f / 12, -1.0f, -4.0f / 12, -6.0f / 12, -2.0f / 12, -3.0f / 12};

// bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8) as torch computes it: for
// i = 0..6 the midpoints of torch.linspace(0.1, 1, 2^i + 1) (fp32: start + k step fused below the middle,
// end - (n-1-k) step above) scaled by 10^(i-6), with both signs, plus 0 and 1, sorted.
std::array<float, 256> make_dynamic_code() {
  const double scale[7] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
  std::vector<float> v;
  for (int i = 0; i < 7; ++i) {
    const int n = (1 << i) + 1;
    const float start = 0.1f, end = 1.0f, step = (end - start) / float(n - 1);
    std::vector<float> lin(static_cast<size_t>(n));
    for (int k = 0; k < n; ++k)
      lin[size_t(k)] = k < n / 2 ? std::fma(step, float(k), start) : std::fma(-step, float(n - 1 - k), end);
    for (int k = 0; k + 1 < n; ++k) {
      const float m = float(scale[i]) * ((lin[size_t(k)] + lin[size_t(k) + 1]) / 2.0f);
      v.push_back(m);
      v.push_back(-m);
    }
  }
  v.push_back(0.0f);
  v.push_back(1.0f);
  std::sort(v.begin(), v.end());
  std::array<float, 256> out{};
  std::copy(v.begin(), v.end(), out.begin());
  return out;
}

// A code sorted by value, for rounding to the nearest: bounds[i] = (sorted[i] + sorted[i+1]) / 2 in fp32, and the
// code of each sorted position. x goes to the first position whose upper bound is >= x (torch.bucketize), so a
// value on a midpoint takes the lower neighbour. Equal values (FP4's 0 and -0) keep their table order.
struct SortedCode {
  std::vector<float> bounds;
  std::vector<uint8_t> code_of;

  SortedCode(const float* code, int size) : code_of(size_t(size)) {
    std::iota(code_of.begin(), code_of.end(), uint8_t(0));
    std::stable_sort(code_of.begin(), code_of.end(), [&](uint8_t a, uint8_t b) { return code[a] < code[b]; });
    for (int i = 0; i + 1 < size; ++i)
      bounds.push_back((code[code_of[size_t(i)]] + code[code_of[size_t(i) + 1]]) / 2.0f);
  }
  uint8_t nearest(float x) const {
    return code_of[size_t(std::lower_bound(bounds.begin(), bounds.end(), x) - bounds.begin())];
  }
};

const SortedCode& sorted_code(Quant4Type t) {
  static const SortedCode nf4(kNf4, 16), fp4(kFp4, 16);
  return t == Quant4Type::nf4 ? nf4 : fp4;
}

float abs_max(const float* x, int64_t n) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

}  // namespace

const float* quant4_code(Quant4Type t) { return t == Quant4Type::nf4 ? kNf4 : kFp4; }

const float* dynamic_code() {
  static const std::array<float, 256> code = make_dynamic_code();
  return code.data();
}

void quantize_4bit(const float* w, int64_t n, Quant4Type t, uint8_t* codes, float* absmax) {
  const SortedCode& code = sorted_code(t);
  const int64_t nb = (n + kQuant4Block - 1) / kQuant4Block;
#pragma omp parallel for
  for (int64_t b = 0; b < nb; ++b) {  // a block covers whole bytes (64 is even)
    const int64_t begin = b * kQuant4Block, len = std::min(kQuant4Block, n - begin);
    const float amax = abs_max(w + begin, len), am = std::max(amax, 1e-38f);
    absmax[b] = amax;
    const float inv = 1.0f / am;
    for (int64_t i = begin; i < begin + len; ++i) {
      const float scaled = std::clamp(len == kQuant4Block ? w[i] * inv : w[i] / am, -1.0f, 1.0f);
      const uint8_t q = code.nearest(scaled);
      uint8_t& byte = codes[i / 2];
      byte = i % 2 ? uint8_t((byte & 0xF0) | q) : uint8_t(q << 4);
    }
  }
  if (n % 2) codes[n / 2] = uint8_t((codes[n / 2] & 0xF0) | code.nearest(0.0f));  // the padding element
}

void dequantize_4bit(const uint8_t* codes, const float* absmax, int64_t n, Quant4Type t, float* out) {
  const float* code = quant4_code(t);
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t byte = codes[i / 2];
    out[i] = code[i % 2 ? byte & 0xF : byte >> 4] * absmax[i / kQuant4Block];
  }
}

float absmax_offset(const float* absmax, int64_t nb) {
  double sum = 0;
  for (int64_t i = 0; i < nb; ++i) sum += absmax[i];
  return nb ? float(sum / double(nb)) : 0.0f;
}

// bitsandbytes' quantize_blockwise as its CPU and CUDA kernels do it: every block (a last partial one too) scaled
// by the reciprocal of its absmax; an all-zero block gets code 0. The nearest code is exact (its CPU kernel reads a
// 65536-entry table of it, which gave the same codes on every input we tried).
void quantize_absmax(const float* absmax, int64_t nb, float offset, uint8_t* q, float* absmax2) {
  static const SortedCode code(dynamic_code(), 256);
  const int64_t n2 = (nb + kAbsmaxBlock - 1) / kAbsmaxBlock;
  for (int64_t b = 0; b < n2; ++b) {
    const int64_t begin = b * kAbsmaxBlock, len = std::min(kAbsmaxBlock, nb - begin);
    std::vector<float> x(static_cast<size_t>(len));
    for (int64_t i = 0; i < len; ++i) x[size_t(i)] = absmax[begin + i] - offset;
    const float amax = abs_max(x.data(), len);
    absmax2[b] = amax;
    const float inv = 1.0f / amax;
    for (int64_t i = 0; i < len; ++i)
      q[begin + i] = amax == 0.0f ? 0 : code.nearest(std::clamp(x[size_t(i)] * inv, -1.0f, 1.0f));
  }
}

void dequantize_absmax(const uint8_t* q, const float* absmax2, int64_t nb, float offset, float* absmax) {
  const float* code = dynamic_code();
  for (int64_t b = 0; b < nb; ++b) {
    const float scaled = code[q[b]] * absmax2[b / kAbsmaxBlock];  // rounded here: no fused multiply-add
    absmax[b] = scaled + offset;
  }
}

}  // namespace qsft::cpu
