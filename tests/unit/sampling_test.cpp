// Sampling (engine/generate/sampling.h) against transformers' logits processors, worked by hand on small logits:
// repetition penalty by sign, greedy's first maximum, top-k keeping ties, top-p's ascending cumulative rule, min-p,
// the seeded draw following the distribution; generation_config.json read as transformers reads it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "engine/base/error.h"
#include "engine/generate/sampling.h"

namespace qsft {
namespace {

// How often each token is drawn over many streams (the draw of stream s, step 0).
std::vector<int> histogram(const std::vector<float>& logits, const SamplingConfig& c, int draws) {
  std::vector<int> h(logits.size(), 0);
  for (int s = 0; s < draws; ++s) {
    std::vector<float> l = logits;
    ++h[size_t(next_token(l, {}, c, uint64_t(s), 0))];
  }
  return h;
}

TEST(Sampling, RepetitionPenaltyDividesPositiveAndMultipliesNegativeScores) {
  SamplingConfig c{.repetition_penalty = 2.0f, .eos_ids = {}};
  std::vector<float> l = {3.0f, -1.0f, 2.5f, 0.5f};
  const std::vector<int32_t> seen = {0, 1, 1};
  EXPECT_EQ(next_token(l, seen, c, 0, 0), 2);  // 3 -> 1.5 falls below 2.5
  EXPECT_EQ(l, (std::vector<float>{1.5f, -2.0f, 2.5f, 0.5f}));
}

TEST(Sampling, GreedyTakesTheFirstMaximum) {
  std::vector<float> l = {0.0f, 2.0f, 2.0f, 1.0f};
  EXPECT_EQ(next_token(l, {}, SamplingConfig{}, 0, 0), 1);
}

TEST(Sampling, TopKKeepsTiesWithTheKthScore) {
  const SamplingConfig c{.do_sample = true, .top_k = 2, .eos_ids = {}};
  const std::vector<int> h = histogram({1.0f, 3.0f, 2.0f, 2.0f, 0.0f}, c, 3000);
  EXPECT_EQ(h[0] + h[4], 0);  // below the 2nd largest score (2): never
  EXPECT_GT(h[2], 0);         // both tokens tied with it stay
  EXPECT_GT(h[3], 0);
}

TEST(Sampling, TopPRemovesTheTailByAscendingCumulativeProbability) {
  // probabilities 0.5, 0.3, 0.15, 0.05 (as logits); top_p 0.75: ascending cumulative 0.05, 0.2, 0.5, 1 -> the
  // tokens at 0.05 and 0.2 (<= 1 - 0.75) go, 0.3 and 0.5 stay.
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  const std::vector<int> h = histogram(logits, {.do_sample = true, .top_p = 0.75f, .eos_ids = {}}, 4000);
  EXPECT_EQ(h[2] + h[3], 0);
  EXPECT_NEAR(double(h[0]) / 4000, 0.5 / 0.8, 0.03);  // renormalised over what is left
}

TEST(Sampling, MinPRemovesTokensBelowAFractionOfTheTopProbability) {
  const std::vector<float> logits = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  const std::vector<int> h = histogram(logits, {.do_sample = true, .min_p = 0.2f, .eos_ids = {}}, 3000);  // 0.1 < 0.2 * 0.6
  EXPECT_EQ(h[2], 0);
  EXPECT_GT(h[1], 0);
}

TEST(Sampling, DrawsFollowTheTemperedDistribution) {
  const std::vector<float> logits = {0.0f, std::log(3.0f)};  // p = 1/4, 3/4; temperature 2: sqrt -> 1/(1+sqrt 3)
  const std::vector<int> h = histogram(logits, {.do_sample = true, .temperature = 2.0f, .eos_ids = {}}, 8000);
  EXPECT_NEAR(double(h[0]) / 8000, 1.0 / (1.0 + std::sqrt(3.0)), 0.02);
}

// With top_k the later processors and the draw run over top-k's tokens only: the same token as the whole row whose
// other scores are removed (-inf) before them, for random rows with ties at the k-th score, over many draws.
TEST(Sampling, TopKThenTopPMinPAndTheDrawChooseAsOverTheWholeRow) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> score(-8.0f, 8.0f);
  int64_t cases = 0;
  for (int trial = 0; trial < 8; ++trial) {
    std::vector<float> logits(5003);
    for (float& x : logits) x = trial % 2 ? std::round(score(rng)) : score(rng);  // odd trials: many ties
    for (const float temperature : {1.0f, 0.7f})
      for (const int64_t k : {int64_t(1), int64_t(20), int64_t(50), int64_t(5003)})
        for (const float top_p : {1.0f, 0.8f})
          for (const float min_p : {0.0f, 0.05f}) {
            const SamplingConfig c{.do_sample = true,
                                   .temperature = temperature,
                                   .top_k = k,
                                   .top_p = top_p,
                                   .min_p = min_p,
                                   .eos_ids = {}};
            std::vector<float> masked = logits;  // tempered as next_token tempers, then top-k's removal
            for (float& x : masked) x = temperature != 1.0f ? x / temperature : x;
            std::vector<float> sorted = masked;
            std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<float>());
            for (float& x : masked)
              if (x < sorted[size_t(k - 1)]) x = -INFINITY;
            SamplingConfig whole = c;
            whole.temperature = 1.0f;
            whole.top_k = 0;
            for (uint64_t stream = 0; stream < 25; ++stream, ++cases) {
              std::vector<float> a = logits, b = masked;
              ASSERT_EQ(next_token(a, {}, c, stream, 3), next_token(b, {}, whole, stream, 3))
                  << "trial " << trial << " temperature " << temperature << " k " << k << " top_p " << top_p
                  << " min_p " << min_p << " stream " << stream;
            }
          }
  }
  EXPECT_EQ(cases, 8 * 2 * 4 * 2 * 2 * 25);
}

// A NaN score is never removed by top-k (only scores < the k-th are), and never leaves it nothing to draw from.
TEST(Sampling, NanScoresDoNotEmptyTopK) {
  for (const size_t at : {size_t(0), size_t(700)}) {
    std::vector<float> logits(2000, 0.5f);
    logits[at] = NAN;
    const SamplingConfig c{.do_sample = true, .top_k = 1, .eos_ids = {}};
    const int32_t t = next_token(logits, {}, c, 1, 0);
    EXPECT_TRUE(t >= 0 && t < 2000) << "NaN at " << at;
  }
}

TEST(Sampling, GenerationConfigAsTransformersReadsIt) {
  const auto dir = std::filesystem::temp_directory_path() / ("qsft_gencfg_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  EXPECT_FALSE(load_generation_config(dir.string()).do_sample);  // no file: transformers' defaults
  std::ofstream(dir / "generation_config.json") << R"({"do_sample": true, "temperature": 0.7, "top_k": 20,
      "top_p": 0.8, "repetition_penalty": 1.05, "eos_token_id": [151645, 151643], "min_p": null})";
  const SamplingConfig c = load_generation_config(dir.string());
  EXPECT_TRUE(c.do_sample);
  EXPECT_FLOAT_EQ(c.temperature, 0.7f);
  EXPECT_EQ(c.top_k, 20);
  EXPECT_FLOAT_EQ(c.top_p, 0.8f);
  EXPECT_FLOAT_EQ(c.min_p, 0.0f);
  EXPECT_FLOAT_EQ(c.repetition_penalty, 1.05f);
  EXPECT_EQ(c.eos_ids, (std::vector<int32_t>{151645, 151643}));
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": 2, "max_new_tokens": 9})";
  EXPECT_EQ(load_generation_config(dir.string()).eos_ids, std::vector<int32_t>{2});
  EXPECT_EQ(load_generation_config(dir.string()).max_new_tokens, 9);
  std::ofstream(dir / "generation_config.json") << R"({"top_k": "many"})";
  try {
    load_generation_config(dir.string());
    ADD_FAILURE() << "a string top_k was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("generation_config.json: key \"top_k\""), std::string::npos) << e.what();
  }
  std::ofstream(dir / "generation_config.json") << R"({"temperature": 0})";
  EXPECT_THROW(load_generation_config(dir.string()), InputError);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qsft
