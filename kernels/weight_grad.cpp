#include "kernels/weight_grad.h"

#include <algorithm>
#include <vector>

namespace qsft::cpu {

void bias_grad(const float* dy, int64_t T, int64_t N, int64_t ld, float* db) {
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < N; ++j) {
    float sum = 0.0f;
    for (int64_t t = 0; t < T; ++t) sum += dy[t * ld + j];
    db[j] += sum;
  }
}

void rmsnorm_wgrad(const float* dy, NormRows dyl, const float* x, NormRows xl, const float* rstd, int64_t T, int64_t H,
                   float* dw) {
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < H; ++j) {
    float sum = 0.0f;
    for (int64_t t = 0; t < T; ++t) sum += dy[dyl.at(t, H) + j] * (x[xl.at(t, H) + j] * rstd[t]);
    dw[j] += sum;
  }
}

void embedding_bwd(const int32_t* ids, const float* dout, int64_t T, int64_t H, float* dtable) {
  // Tokens grouped by id, each group in token order (a stable sort), then one row sum per group.
  std::vector<int64_t> order(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) order[size_t(t)] = t;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return ids[a] < ids[b]; });
  std::vector<int64_t> starts;  // first index into `order` of each id's group
  for (int64_t i = 0; i < T; ++i)
    if (i == 0 || ids[order[size_t(i)]] != ids[order[size_t(i - 1)]]) starts.push_back(i);
  starts.push_back(T);
  const int64_t groups = int64_t(starts.size()) - 1;
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < groups; ++g) {
    float* row = dtable + int64_t(ids[order[size_t(starts[size_t(g)])]]) * H;
    for (int64_t j = 0; j < H; ++j) {
      float sum = 0.0f;
      for (int64_t i = starts[size_t(g)]; i < starts[size_t(g) + 1]; ++i) sum += dout[order[size_t(i)] * H + j];
      row[j] += sum;
    }
  }
}

}  // namespace qsft::cpu
