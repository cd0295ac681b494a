#include "kernels/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/gemm.h"

namespace qsft::cpu {
namespace {

struct RowResult {
  double loss;
  bool correct;
};

// One token's logits [V] -> its loss and accuracy; when want_grad, the row becomes
// grad_scale * (softmax - onehot(target)), the gradient w.r.t. the logits.
// e_j = exp(l_j - max) (fp32), sum in double: lse = max + log(sum), softmax_j = e_j / sum.
RowResult softmax_ce_row(float* logits, int64_t V, int32_t target, float grad_scale, bool want_grad) {
  const int64_t argmax = std::max_element(logits, logits + V) - logits;
  const float max_logit = logits[argmax];
  const double target_logit = logits[target];
  double sum = 0.0;
  for (int64_t j = 0; j < V; ++j) {
    const float e = std::exp(logits[j] - max_logit);
    sum += e;
    if (want_grad) logits[j] = e;
  }
  const RowResult result{double(max_logit) + std::log(sum) - target_logit, argmax == target};
  if (want_grad) {
    const float scale = float(grad_scale / sum);
    for (int64_t j = 0; j < V; ++j) logits[j] *= scale;
    logits[target] -= grad_scale;
  }
  return result;
}

}  // namespace

void lm_head_ce(const float* h, const float* W, const int32_t* targets, int64_t T, int64_t H, int64_t V,
                float grad_scale, float* loss_sum, int32_t* correct, float* dh, float* dW) {
  std::vector<int64_t> trained;  // token indices with a target
  for (int64_t t = 0; t < T; ++t)
    if (targets[t] >= 0) trained.push_back(t);
  if (dh) std::fill_n(dh, T * H, 0.0f);

  const int64_t chunk_max = std::min<int64_t>(kCrossEntropyChunk, int64_t(trained.size()));
  std::vector<float> h_chunk(size_t(chunk_max * H));   // [chunk, H] gathered rows of h
  std::vector<float> logits(size_t(chunk_max * V));    // [chunk, V]
  std::vector<float> dh_chunk(size_t(chunk_max * H));  // [chunk, H]
  std::vector<RowResult> row_results(static_cast<size_t>(chunk_max));
  double loss_total = 0.0;  // summed in token order: the result does not depend on the thread count
  int64_t correct_total = 0;
  for (size_t c0 = 0; c0 < trained.size(); c0 += size_t(chunk_max)) {
    const int64_t rows = std::min<int64_t>(chunk_max, int64_t(trained.size() - c0));
    for (int64_t r = 0; r < rows; ++r) std::copy_n(h + trained[c0 + r] * H, H, h_chunk.data() + r * H);
    gemm(rows, V, H, 1.0f, h_chunk.data(), H, false, W, H, true, 0.0f, logits.data(), V, nullptr);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      row_results[r] = softmax_ce_row(logits.data() + r * V, V, targets[trained[c0 + r]], grad_scale, dh);
    for (int64_t r = 0; r < rows; ++r) {
      loss_total += row_results[r].loss;
      correct_total += row_results[r].correct;
    }
    if (!dh) continue;
    gemm(rows, H, V, 1.0f, logits.data(), V, false, W, H, false, 0.0f, dh_chunk.data(), H, nullptr);
    for (int64_t r = 0; r < rows; ++r) std::copy_n(dh_chunk.data() + r * H, H, dh + trained[c0 + r] * H);
    if (dW) gemm(V, H, rows, 1.0f, logits.data(), V, true, h_chunk.data(), H, false, 1.0f, dW, H, nullptr);
  }
  loss_sum[0] += float(loss_total);
  correct[0] += int32_t(correct_total);
}

}  // namespace qsft::cpu
