#include "kernels/decode_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace qsft::cpu {

void kv_cache_append(const float* k_new, const float* v_new, const int32_t* slot, const int32_t* len,
                     const DecodeAttentionDims& d, float* k_cache, float* v_cache) {
  const int64_t row = d.nkv * d.D;  // one position of one slot
  for (int64_t b = 0; b < d.B; ++b) {
    const int64_t at = (int64_t(slot[b]) * d.S + len[b] - 1) * row;
    std::memcpy(k_cache + at, k_new + b * row, size_t(row) * sizeof(float));
    std::memcpy(v_cache + at, v_new + b * row, size_t(row) * sizeof(float));
  }
}

void decode_attention(const float* q, const float* k_cache, const float* v_cache, const int32_t* slot,
                      const int32_t* len, const DecodeAttentionDims& d, float* out) {
  const int64_t D = d.D, group = d.n / d.nkv, row = d.nkv * D;
  const double scale = 1.0 / std::sqrt(double(D));
  int64_t longest = 0;
  for (int64_t b = 0; b < d.B; ++b) longest = std::max<int64_t>(longest, len[b]);
#pragma omp parallel
  {
    std::vector<double> scores(static_cast<size_t>(longest)), acc(static_cast<size_t>(D));
#pragma omp for collapse(2) schedule(dynamic, 4)
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t h = 0; h < d.n; ++h) {
        const float* qh = q + (b * d.n + h) * D;
        const float* k = k_cache + int64_t(slot[b]) * d.S * row + (h / group) * D;  // position j at k + j * row
        const float* v = v_cache + int64_t(slot[b]) * d.S * row + (h / group) * D;
        double max_score = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < len[b]; ++j) {
          double s = 0.0;
          for (int64_t e = 0; e < D; ++e) s += double(qh[e]) * k[j * row + e];
          scores[size_t(j)] = scale * s;
          max_score = std::max(max_score, scores[size_t(j)]);
        }
        double sum = 0.0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < len[b]; ++j) {
          const double p = std::exp(scores[size_t(j)] - max_score);
          sum += p;
          for (int64_t e = 0; e < D; ++e) acc[size_t(e)] += p * v[j * row + e];
        }
        float* o = out + (b * d.n + h) * D;
        for (int64_t e = 0; e < D; ++e) o[e] = float(acc[size_t(e)] / sum);
      }
  }
}

}  // namespace qsft::cpu
