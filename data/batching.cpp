#include "data/batching.h"

#include <algorithm>
#include <set>

#include "data/shuffle.h"
#include "engine/base/error.h"

namespace qsft {

namespace {

// Stream numbers of seeded_rng, one per purpose (data_split.cpp uses 1 << 32).
uint64_t sequence_stream(int epoch) { return 2 * uint64_t(uint32_t(epoch)); }
uint64_t bin_stream(int epoch) { return 2 * uint64_t(uint32_t(epoch)) + 1; }

}  // namespace

Bins pack_best_fit_decreasing(const SequenceSet& set, std::span<const uint32_t> order, int64_t capacity) {
  std::vector<uint32_t> by_length(order.begin(), order.end());
  std::stable_sort(by_length.begin(), by_length.end(),
                   [&](uint32_t a, uint32_t b) { return set.length(a) > set.length(b); });
  Bins bins;
  std::vector<std::vector<uint32_t>> bins_with_space(size_t(capacity) + 1);  // free space -> bins with it
  std::set<int64_t> spaces;                                                  // free spaces some bin has
  for (uint32_t s : by_length) {
    const int64_t len = set.length(s);
    if (len > capacity)
      throw InputError("packing: sequence " + std::to_string(s) + " has " + std::to_string(len) +
                       " tokens, more than max_length " + std::to_string(capacity));
    auto fit = spaces.lower_bound(len);
    uint32_t bin;
    int64_t space;
    if (fit == spaces.end()) {
      bin = uint32_t(bins.size());
      bins.emplace_back();
      space = capacity;
    } else {
      space = *fit;
      auto& with_space = bins_with_space[size_t(space)];
      bin = with_space.back();
      with_space.pop_back();
      if (with_space.empty()) spaces.erase(fit);
    }
    bins[bin].push_back(s);
    space -= len;
    if (space > 0) {
      bins_with_space[size_t(space)].push_back(bin);
      spaces.insert(space);
    }
  }
  return bins;
}

double packing_efficiency(const SequenceSet& set, const Bins& bins, int64_t capacity) {
  if (bins.empty()) return 1.0;
  int64_t tokens = 0;
  for (const auto& bin : bins)
    for (uint32_t s : bin) tokens += set.length(s);
  return double(tokens) / (double(bins.size()) * double(capacity));
}

std::vector<std::vector<uint32_t>> plan_epoch(const SequenceSet& set, int64_t max_length, int bins_per_micro_batch,
                                              int64_t micro_batch_tokens, uint64_t seed, int epoch, bool packing) {
  if (max_length < 1 || (micro_batch_tokens <= 0 && bins_per_micro_batch < 1))
    throw InputError("plan_epoch: max_length and bins_per_micro_batch (or micro_batch_tokens) must be positive");
  const std::vector<uint32_t> order = shuffled_indices(set.size(), seed, sequence_stream(epoch));
  Bins bins;
  if (packing) {
    bins = pack_best_fit_decreasing(set, order, max_length);
    SplitMix64 rng = seeded_rng(seed, bin_stream(epoch));
    shuffle_in_place(bins, rng);  // BFD makes the longest bins first; spread them over the epoch
  } else {
    for (uint32_t s : order) bins.push_back({s});
  }
  auto bin_tokens = [&](const std::vector<uint32_t>& bin) {
    int64_t n = 0;
    for (uint32_t s : bin) n += set.length(s);
    return n;
  };
  std::vector<std::vector<uint32_t>> batches;
  std::vector<uint32_t> batch;
  int64_t batch_tokens = 0;
  int batch_bins = 0;
  for (const auto& bin : bins) {
    const int64_t n = bin_tokens(bin);
    const bool full =
        micro_batch_tokens > 0 ? batch_tokens + n > micro_batch_tokens : batch_bins == bins_per_micro_batch;
    if (batch_bins > 0 && full) {
      batches.push_back(std::move(batch));
      batch.clear();
      batch_tokens = 0;
      batch_bins = 0;
    }
    batch.insert(batch.end(), bin.begin(), bin.end());
    batch_tokens += n;
    ++batch_bins;
  }
  if (batch_bins > 0) batches.push_back(std::move(batch));
  return batches;
}

PackedBatch make_batch(const SequenceSet& set, std::span<const uint32_t> indices) {
  PackedBatch b;
  for (uint32_t s : indices) {
    if (s >= set.size()) throw InputError("make_batch: sequence index " + std::to_string(s) + " out of range");
    b.append(set.ids(s), set.mask(s));
  }
  return b;
}

}  // namespace qsft
