#include "engine/generate/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "kernels/rng.h"

namespace qsft {
namespace {

constexpr float kRemoved = -std::numeric_limits<float>::infinity();

// transformers' RepetitionPenaltyLogitsProcessor: each token seen has its score divided by p when positive,
// multiplied by p when negative.
void repetition_penalty(std::span<float> logits, std::span<const int32_t> history, float p) {
  std::vector<int32_t> seen(history.begin(), history.end());
  std::sort(seen.begin(), seen.end());
  seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
  for (int32_t id : seen) {
    float& s = logits[size_t(id)];
    s = s < 0 ? s * p : s / p;
  }
}

// softmax of the logits in double (removed tokens: 0).
std::vector<double> softmax(std::span<const float> logits) {
  const float m = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double sum = 0;
  for (size_t i = 0; i < p.size(); ++i) sum += p[i] = std::exp(double(logits[i]) - m);
  for (double& x : p) x /= sum;
  return p;
}

// The k-th largest score (equal scores counted apart). A small k (Qwen's 20 of 151936) keeps the k largest in a
// min-heap, one comparison for most scores; a large one selects in a copy.
float kth_largest(std::span<const float> logits, int64_t k) {
  if (k * 64 > int64_t(logits.size())) {
    std::vector<float> sorted(logits.begin(), logits.end());
    std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<float>());
    return sorted[size_t(k - 1)];
  }
  std::vector<float> heap(logits.begin(), logits.begin() + k);  // the k largest so far; heap.front(): the least
  std::make_heap(heap.begin(), heap.end(), std::greater<float>());
  for (size_t i = size_t(k); i < logits.size(); ++i) {
    if (!(logits[i] > heap.front())) continue;
    std::pop_heap(heap.begin(), heap.end(), std::greater<float>());
    heap.back() = logits[i];
    std::push_heap(heap.begin(), heap.end(), std::greater<float>());
  }
  return heap.front();
}

// TopKLogitsWarper keeps the k-th largest score and every score >= it (ties stay): their ids, in vocabulary order.
std::vector<int32_t> top_k_ids(std::span<const float> logits, int64_t k) {
  const float kth = kth_largest(logits, std::min<int64_t>(k, int64_t(logits.size())));
  std::vector<int32_t> ids;
  for (size_t i = 0; i < logits.size(); ++i)
    if (!(logits[i] < kth)) ids.push_back(int32_t(i));  // TopKLogitsWarper removes `< kth` only: NaN stays
  return ids;
}

// TopPLogitsWarper: sorted ascending (stable), tokens whose cumulative probability is <= 1 - top_p are removed;
// the most likely token always stays.
void top_p(std::span<float> logits, float p) {
  const std::vector<double> probs = softmax(logits);
  std::vector<size_t> order(logits.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return logits[a] < logits[b]; });
  double cum = 0;
  for (size_t i = 0; i + 1 < order.size(); ++i) {
    cum += probs[order[i]];
    if (cum <= 1.0 - double(p)) logits[order[i]] = kRemoved;
  }
}

// MinPLogitsWarper: tokens with probability < min_p * (the top probability) are removed.
void min_p(std::span<float> logits, float mp) {
  const std::vector<double> probs = softmax(logits);
  const double threshold = double(mp) * *std::max_element(probs.begin(), probs.end());
  for (size_t i = 0; i < probs.size(); ++i)
    if (probs[i] < threshold) logits[i] = kRemoved;
}

int32_t argmax(std::span<const float> logits) {  // the first of equal maxima, as torch.argmax
  return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// Inverse CDF of the softmax in vocabulary order at u in [0, 1).
int32_t draw(std::span<const float> logits, float u) {
  const std::vector<double> probs = softmax(logits);
  double cum = 0;
  int32_t last = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] == 0) continue;
    last = int32_t(i);
    cum += probs[i];
    if (double(u) < cum) return last;
  }
  return last;  // u beyond the rounded total
}

}  // namespace

bool SamplingConfig::is_eos(int32_t id) const { return std::find(eos_ids.begin(), eos_ids.end(), id) != eos_ids.end(); }

int32_t next_token(std::span<float> logits, std::span<const int32_t> history, const SamplingConfig& c, uint64_t stream,
                   uint64_t step) {
  if (c.repetition_penalty != 1.0f) repetition_penalty(logits, history, c.repetition_penalty);
  if (!c.do_sample) return argmax(logits);
  if (c.temperature != 1.0f)
    for (float& s : logits) s /= c.temperature;
  // After top-k only its tokens go on (in vocabulary order): the ones it removes would have probability 0 in every
  // later step, adding 0 to each sum, sorting first in top-p and never drawn, so the choice is the one over the
  // whole row, without sorting the whole vocabulary (Qwen's generation_config: top_k 20 of 151936).
  std::vector<int32_t> ids;
  std::vector<float> kept;
  std::span<float> row = logits;
  if (c.top_k > 0) {
    ids = top_k_ids(logits, c.top_k);
    for (int32_t id : ids) kept.push_back(logits[size_t(id)]);
    row = kept;
  }
  if (c.top_p < 1.0f) top_p(row, c.top_p);
  if (c.min_p > 0.0f) min_p(row, c.min_p);
  const int32_t chosen = draw(row, rng::uniform(stream, step));
  return ids.empty() ? chosen : ids[size_t(chosen)];
}

}  // namespace qsft
