// The token cache written while tokenizing: the first run's sequences (ids, masks, order, split) and statistics
// equal the cached run's and the in-memory fallback's (no cache folder, or a write failing halfway), with and
// without eval files or an eval_split draw; no temporary file is left behind; the checksum's hash over pieces equals
// the hash of the whole.
#include <sys/resource.h>

#include <algorithm>
#include <csignal>

#include "data/dataset.h"
#include "data/hash.h"
#include "test_util.h"

namespace qsft {
namespace {

namespace fs = std::filesystem;

const fs::path kQwen = test::shared_testdata() / "qwen2.5";
const fs::path kSft = test::shared_testdata() / "sft";

void expect_same(const SequenceSet& a, const SequenceSet& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  EXPECT_TRUE(std::ranges::equal(a.offsets(), b.offsets())) << what;
  EXPECT_TRUE(std::ranges::equal(a.flat_ids(), b.flat_ids())) << what;
  EXPECT_TRUE(std::ranges::equal(a.flat_mask(), b.flat_mask())) << what;
  EXPECT_EQ(a.trained_tokens(), b.trained_tokens()) << what;
  EXPECT_EQ(a.trained_tokens(), std::ranges::count(b.flat_mask(), uint8_t(1))) << what;
}

void expect_same(const PreparedData& a, const PreparedData& b, const std::string& what) {
  expect_same(a.train, b.train, what + ": train");
  expect_same(a.eval, b.eval, what + ": eval");
  EXPECT_EQ(encode_stats(a.stats), encode_stats(b.stats)) << what;
}

class CacheStream : public test::TempDirTest {
 protected:
  void SetUp() override {
    for (const fs::path& p : {kQwen, kSft})
      if (!fs::exists(p)) GTEST_SKIP() << "skipped: " << p << " is absent (shared test data)";
    TempDirTest::SetUp();
  }
  // alpaca_zh split into pieces of at most 64 tokens: most records give several sequences.
  DataConfig config() const {
    DataConfig cfg;
    cfg.train_files = {(kSft / "alpaca_zh_demo.json").string()};
    cfg.max_length = 64;
    cfg.truncation = "split";
    cfg.cache_dir = (dir_ / "cache").string();
    return cfg;
  }
  // The first run (writing the cache), the cached run and a run that cannot write its cache agree.
  void check_runs(const DataConfig& cfg, const std::string& what) {
    PreparedData first = prepare_data(cfg, kQwen.string(), false);
    PreparedData cached = prepare_data(cfg, kQwen.string(), false);
    EXPECT_FALSE(first.stats.from_cache) << what;
    EXPECT_TRUE(cached.stats.from_cache) << what;
    expect_same(first, cached, what + ", first vs cached");
    DataConfig unwritable = cfg;
    std::ofstream(dir_ / "a file") << "x";
    unwritable.cache_dir = (dir_ / "a file" / "cache").string();  // under a file: no folder can be made
    PreparedData memory = prepare_data(unwritable, kQwen.string(), false);
    EXPECT_FALSE(fs::exists(memory.stats.cache_path)) << what;
    expect_same(first, memory, what + ", first vs in memory");
    for (const auto& entry : fs::directory_iterator(cfg.cache_dir))
      EXPECT_EQ(entry.path().extension(), ".bin") << "left behind: " << entry.path();
  }
};

TEST_F(CacheStream, TrainOnly) {
  DataConfig cfg = config();
  check_runs(cfg, "train only");
}

TEST_F(CacheStream, EvalSplitDrawsRecordsWithAllTheirPieces) {
  DataConfig cfg = config();
  cfg.eval_split = 0.1;
  check_runs(cfg, "eval_split");
  PreparedData d = prepare_data(cfg, kQwen.string(), false);
  EXPECT_GT(d.eval.size(), 100u);  // 100 records, in pieces
  EXPECT_EQ(d.stats.eval_sequences, int64_t(d.eval.size()));
  EXPECT_EQ(d.train.size() + d.eval.size(), prepare_data(config(), kQwen.string(), false).train.size());
}

TEST_F(CacheStream, EvalFiles) {
  DataConfig cfg = config();
  cfg.eval_files = {(kSft / "alpaca_en_demo.json").string()};
  check_runs(cfg, "eval files");
}

// Files may grow to `bytes` only, while it lives (writes past it fail with EFBIG).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) : old_signal_(std::signal(SIGXFSZ, SIG_IGN)) {
    getrlimit(RLIMIT_FSIZE, &old_);
    rlimit limit = old_;
    limit.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_signal_);
  }

 private:
  rlimit old_{};
  void (*old_signal_)(int);
};

TEST_F(CacheStream, AWriteFailingHalfwayFallsBackToMemory) {
  DataConfig cfg = config();
  cfg.eval_split = 0.1;
  PreparedData memory;
  {
    FileSizeLimit limit(256 << 10);  // the cache is about 1.5 MB
    memory = prepare_data(cfg, kQwen.string(), false);
  }
  EXPECT_FALSE(fs::exists(memory.stats.cache_path));
  EXPECT_TRUE(fs::is_empty(cfg.cache_dir));
  expect_same(memory, prepare_data(cfg, kQwen.string(), false), "failed write vs cache");
}

TEST_F(CacheStream, NoTemporaryFileAfterABadRecord) {
  std::ofstream(dir_ / "bad.jsonl") << R"({"prompt": "a", "completion": "b"})"
                                       "\n"
                                       "{\n";
  DataConfig cfg = config();
  cfg.train_files = {(dir_ / "bad.jsonl").string()};
  EXPECT_THROW(prepare_data(cfg, kQwen.string(), false), InputError);
  EXPECT_TRUE(fs::is_empty(cfg.cache_dir));
}

TEST(CacheHash, PiecesHashLikeTheWhole) {
  std::string bytes(100, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = char(i * 37 + 1);
  for (size_t n : {0, 1, 7, 8, 9, 64, 100}) {
    const uint64_t whole = hash_bytes(bytes.data(), n, 5);
    for (size_t cut1 = 0; cut1 <= n; ++cut1)
      for (size_t cut2 = cut1; cut2 <= n; cut2 += 3) {
        Hasher h(5);
        h.update(bytes.data(), cut1).update(bytes.data() + cut1, cut2 - cut1).update(bytes.data() + cut2, n - cut2);
        ASSERT_EQ(h.digest(), whole) << n << " cut at " << cut1 << ", " << cut2;
      }
  }
  EXPECT_NE(hash_bytes("\0", 1, 0), hash_bytes("\0\0", 2, 0));  // the length counts
  // XXH3, which hashes at memory speed (the hand-rolled hash before it ran at ~2.3 GB/s).
  EXPECT_EQ(hash_bytes(bytes.data(), bytes.size(), 5), XXH3_64bits_withSeed(bytes.data(), bytes.size(), 5));
}

}  // namespace
}  // namespace qsft
