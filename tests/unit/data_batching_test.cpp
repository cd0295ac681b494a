// Packing and epoch plans: no sequence lost or duplicated, bins within max_length, boundaries and positions per
// sequence, token budgets, reproducible orders from (seed, epoch).
#include <algorithm>
#include <numeric>

#include "data/batching.h"
#include "data/shuffle.h"
#include "engine/base/error.h"
#include "test_util.h"

namespace qsft {
namespace {

// n sequences of lengths 1..max_len from seed; ids are (sequence << 16 | position); every other token trained.
SequenceSet random_set(size_t n, int64_t max_len, uint64_t seed) {
  SplitMix64 rng(seed);
  SequenceSetBuilder b;
  for (size_t s = 0; s < n; ++s) {
    const size_t len = 1 + rng.below(uint64_t(max_len));
    std::vector<int32_t> ids(len);
    std::vector<uint8_t> mask(len);
    for (size_t t = 0; t < len; ++t) {
      ids[t] = int32_t(s << 16 | t);
      mask[t] = t % 2;
    }
    b.add(ids, mask);
  }
  return b.finish();
}

TEST(DataBatching, EveryBinWithinMaxLengthAndEverySequenceOnce) {
  SequenceSet set = random_set(2000, 300, 1);
  auto plan = plan_epoch(set, 512, 1, 0, 7, 0);
  std::vector<int> seen(set.size(), 0);
  int64_t tokens = 0;
  for (const auto& mb : plan) {
    int64_t n = 0;
    for (uint32_t s : mb) {
      ++seen[s];
      n += set.length(s);
    }
    EXPECT_LE(n, 512);
    tokens += n;
  }
  EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }));
  EXPECT_EQ(tokens, set.total_tokens());
  EXPECT_GT(double(tokens) / (double(plan.size()) * 512), 0.95);  // best-fit decreasing packs tightly
}

TEST(DataBatching, BestFitDecreasingPutsEachSequenceInTheFullestBinItFits) {
  SequenceSetBuilder b;
  for (int len : {6, 5, 4, 3, 2}) b.add(std::vector<int32_t>(size_t(len), 1), std::vector<uint8_t>(size_t(len), 1));
  SequenceSet set = b.finish();
  std::vector<uint32_t> order = {0, 1, 2, 3, 4};
  Bins bins = pack_best_fit_decreasing(set, order, 10);
  // 6 -> bin0 (4 left); 5 -> bin1 (5 left); 4 -> bin0 (0 left); 3 -> bin1 (2 left); 2 -> bin1 (0 left)
  EXPECT_EQ(bins, (Bins{{0, 2}, {1, 3, 4}}));
  EXPECT_DOUBLE_EQ(packing_efficiency(set, bins, 10), 1.0);
  EXPECT_THROW(pack_best_fit_decreasing(set, order, 5), InputError);
}

TEST(DataBatching, PlansAreReproducibleFromSeedAndEpoch) {
  SequenceSet set = random_set(500, 100, 2);
  EXPECT_EQ(plan_epoch(set, 256, 2, 0, 11, 3), plan_epoch(set, 256, 2, 0, 11, 3));
  EXPECT_NE(plan_epoch(set, 256, 2, 0, 11, 3), plan_epoch(set, 256, 2, 0, 11, 4));
  EXPECT_NE(plan_epoch(set, 256, 2, 0, 11, 3), plan_epoch(set, 256, 2, 0, 12, 3));
}

TEST(DataBatching, TokenBudgetAndBinsPerMicroBatch) {
  SequenceSet set = random_set(800, 200, 3);
  auto by_tokens = plan_epoch(set, 256, 1, 1024, 5, 0);
  for (const auto& mb : by_tokens) {
    int64_t n = 0;
    for (uint32_t s : mb) n += set.length(s);
    EXPECT_LE(n, 1024);
  }
  auto by_bins = plan_epoch(set, 256, 4, 0, 5, 0);
  auto single = plan_epoch(set, 256, 1, 0, 5, 0);
  EXPECT_EQ(by_bins.size(), (single.size() + 3) / 4);
  auto unpacked = plan_epoch(set, 256, 3, 0, 5, 0, false);
  EXPECT_EQ(unpacked.size(), (set.size() + 2) / 3);
}

TEST(DataBatching, MakeBatchKeepsBoundariesPositionsAndTargets) {
  SequenceSet set = random_set(10, 20, 4);
  std::vector<uint32_t> idx = {3, 7, 1};
  PackedBatch b = make_batch(set, idx);
  ASSERT_EQ(b.num_seqs(), 3);
  for (int k = 0; k < 3; ++k) {
    auto ids = set.ids(idx[size_t(k)]);
    auto mask = set.mask(idx[size_t(k)]);
    const int begin = b.cu_seqlens[size_t(k)];
    ASSERT_EQ(b.cu_seqlens[size_t(k) + 1] - begin, int(ids.size()));
    for (size_t t = 0; t < ids.size(); ++t) {
      EXPECT_EQ(b.ids[size_t(begin) + t], ids[t]);
      EXPECT_EQ(b.positions[size_t(begin) + t], int(t));
      const bool trained = t + 1 < ids.size() && mask[t + 1];
      EXPECT_EQ(b.targets[size_t(begin) + t], trained ? ids[t + 1] : kIgnoreTarget);
    }
  }
}

TEST(DataBatching, ShuffleIsAPermutationAndStable) {
  auto a = shuffled_indices(1000, 42, 0);
  EXPECT_EQ(a, shuffled_indices(1000, 42, 0));
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  std::vector<uint32_t> iota(1000);
  std::iota(iota.begin(), iota.end(), 0u);
  EXPECT_EQ(sorted, iota);
  EXPECT_NE(a, iota);
  // Pinned values: the order must not change between builds or platforms.
  EXPECT_EQ(std::vector<uint32_t>(a.begin(), a.begin() + 4), (std::vector<uint32_t>{942, 992, 514, 611}));
}

}  // namespace
}  // namespace qsft
