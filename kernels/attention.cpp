#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace qsft::cpu {
namespace {

double dot(const float* a, const float* b, int64_t D) {
  double s = 0.0;
  for (int64_t d = 0; d < D; ++d) s += double(a[d]) * b[d];
  return s;
}

// acc[D] += w * x[D]
void axpy(double w, const float* x, int64_t D, double* acc) {
  for (int64_t d = 0; d < D; ++d) acc[d] += w * x[d];
}

// Row addressing for one call: token t, query head h or kv head g.
struct Heads {
  AttentionDims dims;
  int64_t group;  // query heads per kv head
  double scale;   // D^-0.5
  explicit Heads(const AttentionDims& d) : dims(d), group(d.n / d.nkv), scale(1.0 / std::sqrt(double(d.D))) {}
  int64_t out_row(int64_t t, int64_t h) const { return (t * dims.n + h) * dims.D; }       // into packed [T, n, D]
  int64_t q_row(int64_t t, int64_t h) const { return t * dims.q_stride() + h * dims.D; }  // into q, dq
  int64_t k_row(int64_t t, int64_t g) const { return t * dims.k_stride() + g * dims.D; }  // into k, dk
  int64_t v_row(int64_t t, int64_t g) const { return t * dims.v_stride() + g * dims.D; }  // into v, dv
  int64_t kv_head(int64_t h) const { return h / group; }
};

// The sequence [begin, end) of each token, from cu_seqlens.
struct TokenSpans {
  std::vector<int64_t> begin, end;  // [T]
  TokenSpans(const int32_t* cu_seqlens, int num_seqs, int64_t T)
      : begin(static_cast<size_t>(T)), end(static_cast<size_t>(T)) {
    for (int s = 0; s < num_seqs; ++s)
      for (int64_t t = cu_seqlens[s]; t < cu_seqlens[s + 1]; ++t) {
        begin[t] = cu_seqlens[s];
        end[t] = cu_seqlens[s + 1];
      }
  }
  int64_t longest() const {
    int64_t m = 0;
    for (size_t t = 0; t < begin.size(); ++t) m = std::max(m, end[t] - begin[t]);
    return m;
  }
};

}  // namespace

void attention_fwd(const float* q, const float* k, const float* v, const int32_t* cu_seqlens, int num_seqs,
                   const AttentionDims& dims, float* out, float* lse) {
  const Heads heads(dims);
  const TokenSpans spans(cu_seqlens, num_seqs, dims.T);
  const int64_t D = dims.D;
#pragma omp parallel
  {
    std::vector<double> scores(size_t(spans.longest()));  // [keys of this row]
    std::vector<double> acc(static_cast<size_t>(D));      // [D]
#pragma omp for collapse(2) schedule(dynamic, 16)
    for (int64_t h = 0; h < dims.n; ++h)
      for (int64_t i = 0; i < dims.T; ++i) {
        const float* qi = q + heads.q_row(i, h);
        const int64_t g = heads.kv_head(h), j0 = spans.begin[i];
        double max_score = -std::numeric_limits<double>::infinity();
        for (int64_t j = j0; j <= i; ++j) {
          scores[j - j0] = heads.scale * dot(qi, k + heads.k_row(j, g), D);
          max_score = std::max(max_score, scores[j - j0]);
        }
        double sum = 0.0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = j0; j <= i; ++j) {
          const double p = std::exp(scores[j - j0] - max_score);
          sum += p;
          axpy(p, v + heads.v_row(j, g), D, acc.data());
        }
        float* oi = out + heads.out_row(i, h);
        for (int64_t d = 0; d < D; ++d) oi[d] = float(acc[d] / sum);
        lse[h * dims.T + i] = float(max_score + std::log(sum));
      }
  }
}

void attention_bwd(const float* dout, const float* q, const float* k, const float* v, const float* out,
                   const float* lse, const int32_t* cu_seqlens, int num_seqs, const AttentionDims& dims, float* dq,
                   float* dk, float* dv) {
  const Heads heads(dims);
  const TokenSpans spans(cu_seqlens, num_seqs, dims.T);
  const int64_t D = dims.D, T = dims.T;

  std::vector<double> delta(size_t(dims.n * T));  // [n, T]: dout_i . out_i
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t h = 0; h < dims.n; ++h)
    for (int64_t i = 0; i < T; ++i) delta[h * T + i] = dot(dout + heads.out_row(i, h), out + heads.out_row(i, h), D);

  // P_ij and dS_ij of query row (i, h) against key row j (kv head g = h / group).
  struct ProbGrad {
    double p, ds;
  };
  auto prob_grad = [&](int64_t i, int64_t h, int64_t j) {
    const int64_t g = heads.kv_head(h);
    const double s = heads.scale * dot(q + heads.q_row(i, h), k + heads.k_row(j, g), D);
    const double p = std::exp(s - double(lse[h * T + i]));
    const double dp = dot(dout + heads.out_row(i, h), v + heads.v_row(j, g), D);
    return ProbGrad{p, p * (dp - delta[h * T + i])};
  };
  auto store = [D](const std::vector<double>& acc, double factor, float* dst) {
    for (int64_t d = 0; d < D; ++d) dst[d] = float(factor * acc[d]);
  };

#pragma omp parallel
  {
    std::vector<double> acc_a(static_cast<size_t>(D)), acc_b(static_cast<size_t>(D));  // [D] each
    // dq_i = scale * sum_{j <= i} dS_ij k_j
#pragma omp for collapse(2) schedule(dynamic, 16)
    for (int64_t h = 0; h < dims.n; ++h)
      for (int64_t i = 0; i < T; ++i) {
        std::fill(acc_a.begin(), acc_a.end(), 0.0);
        for (int64_t j = spans.begin[i]; j <= i; ++j)
          axpy(prob_grad(i, h, j).ds, k + heads.k_row(j, heads.kv_head(h)), D, acc_a.data());
        store(acc_a, heads.scale, dq + heads.q_row(i, h));
      }
      // dk_j = scale * sum_{h in group, i >= j} dS_ij q_i;  dv_j = sum_{h in group, i >= j} P_ij dout_i
#pragma omp for collapse(2) schedule(dynamic, 16)
    for (int64_t g = 0; g < dims.nkv; ++g)
      for (int64_t j = 0; j < T; ++j) {
        std::fill(acc_a.begin(), acc_a.end(), 0.0);
        std::fill(acc_b.begin(), acc_b.end(), 0.0);
        for (int64_t h = g * heads.group; h < (g + 1) * heads.group; ++h)
          for (int64_t i = j; i < spans.end[j]; ++i) {
            const ProbGrad pg = prob_grad(i, h, j);
            axpy(pg.ds, q + heads.q_row(i, h), D, acc_a.data());
            axpy(pg.p, dout + heads.out_row(i, h), D, acc_b.data());
          }
        store(acc_a, heads.scale, dk + heads.k_row(j, g));
        store(acc_b, 1.0, dv + heads.v_row(j, g));
      }
  }
}

}  // namespace qsft::cpu
