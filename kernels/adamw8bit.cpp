#include "kernels/adamw8bit.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>

#include "kernels/adamw8bit_math.h"

namespace qsft::cpu {

std::array<float, 256> dynamic_map(bool is_signed) {
  // 7 exponents (10^-6 .. 10^0); exponent i holds 2^i (signed: each sign) or 2^(i+1) fraction means.
  std::vector<float> codes;
  for (int i = 0; i < 7; ++i) {
    const int items = (is_signed ? 1 << i : 1 << (i + 1)) + 1;  // linspace points; means between them
    const double scale = std::pow(10.0, double(i - 6));
    for (int j = 0; j + 1 < items; ++j) {
      const double a = 0.1 + 0.9 * double(j) / double(items - 1), b = 0.1 + 0.9 * double(j + 1) / double(items - 1);
      const double mean = scale * ((a + b) / 2.0);
      codes.push_back(float(mean));
      if (is_signed) codes.push_back(float(-mean));
    }
  }
  codes.push_back(0.0f);
  codes.push_back(1.0f);
  std::sort(codes.begin(), codes.end());  // 254 means, 0 and 1: 256 codes either way
  std::array<float, 256> out{};
  std::copy(codes.begin(), codes.end(), out.begin());
  return out;
}

uint8_t quantize_code(const float* map, float x, bool is_signed) { return adamw8bit::quantize(map, x, is_signed); }

void adamw8bit_step(float* p, const float* g, const AdamW8bitState& s, int64_t n, const AdamWHyper& hyper,
                    int64_t decayed) {
  const AdamW8bitScalars k = adamw8bit_scalars(hyper, decayed);
  const int64_t blocks = (n + kAdamW8bitBlock - 1) / kAdamW8bitBlock;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t start = b * kAdamW8bitBlock, len = std::min(kAdamW8bitBlock, n - start);
    adamw8bit::Moments mo[kAdamW8bitBlock];
    float max_m = -FLT_MAX, max_v = -FLT_MAX;
    for (int64_t j = 0; j < kAdamW8bitBlock; ++j) {  // lanes past n: the kernel's padding (g 0, codes 128 and 0)
      const int64_t i = start + j;
      const bool in = j < len;
      mo[j] = adamw8bit::update_moments(in ? g[i] : 0.0f, s.map_m[in ? s.m[i] : 128], s.absmax_m[b],
                                        s.map_v[in ? s.v[i] : 0], s.absmax_v[b], k);
      max_m = adamw8bit::maxf(max_m, adamw8bit::absf(mo[j].s1));
      max_v = adamw8bit::maxf(max_v, adamw8bit::absf(mo[j].s2));
    }
    s.absmax_m[b] = max_m;
    s.absmax_v[b] = max_v;
    for (int64_t j = 0; j < len; ++j) {
      const int64_t i = start + j;
      p[i] = adamw8bit::update_param(p[i], g[i], mo[j], k, i);
      s.m[i] = adamw8bit::quantize_m(s.map_m, mo[j].s1, max_m);
      s.v[i] = adamw8bit::quantize(s.map_v, adamw8bit::div(mo[j].s2, max_v), false);
    }
  }
}

}  // namespace qsft::cpu
