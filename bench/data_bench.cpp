// Data pipeline throughput: prepare_data (read, parse, convert, render with the chat format, tokenize, mask,
// count, pack best-fit decreasing, write the token cache) over the files bench/data_baseline.py writes, with a
// fresh cache folder each run so that nothing comes from an earlier one. The baseline runs TRL-style Python
// preprocessing (datasets.map + apply_chat_template + BFD packing) on the same files. Not a test; results go
// to bench/RESULTS.md.
//   build/bench/data_bench INPUT_DIR MODEL_DIR [threads] [runs]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

#include "data/dataset.h"

namespace {

namespace fs = std::filesystem;

constexpr int64_t kMaxLength = 4096;  // the baseline's max_length too

uint64_t input_bytes(const std::vector<std::string>& files) {
  uint64_t n = 0;
  for (const std::string& f : files) n += fs::file_size(f);
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s INPUT_DIR MODEL_DIR [threads] [runs]\n", argv[0]);
    return 2;
  }
  qsft::DataConfig cfg;
  cfg.train_files = qsft::expand_data_files({argv[1]}, "INPUT_DIR");
  cfg.max_length = kMaxLength;
  cfg.num_threads = argc > 3 ? std::stoi(argv[3]) : int(std::max(1u, std::thread::hardware_concurrency()));
  const int runs = argc > 4 ? std::stoi(argv[4]) : 3;
  const fs::path cache = fs::temp_directory_path() / ("qsft_data_bench_" + std::to_string(::getpid()));
  cfg.cache_dir = cache.string();
  const double mb = input_bytes(cfg.train_files) / 1e6;
  std::printf("input: %zu files, %.1f MB; %d threads; max_length %lld\n", cfg.train_files.size(), mb, cfg.num_threads,
              static_cast<long long>(kMaxLength));
  double best = 1e300;
  qsft::DataStats stats;
  for (int r = 0; r < runs; ++r) {
    fs::remove_all(cache);
    stats = qsft::prepare_data(cfg, argv[2], false).stats;
    std::printf("run %d: %.2f s  %7.2f MB/s  %11.0f tokens/s\n", r + 1, stats.seconds, mb / stats.seconds,
                stats.train_tokens / stats.seconds);
    best = std::min(best, stats.seconds);
  }
  fs::remove_all(cache);
  std::printf("records %lld, sequences %lld, tokens %lld, trained %lld, truncated %lld, bins %lld (%.1f%% full)\n",
              static_cast<long long>(stats.records), static_cast<long long>(stats.train_sequences),
              static_cast<long long>(stats.train_tokens), static_cast<long long>(stats.train_trained_tokens),
              static_cast<long long>(stats.truncated), static_cast<long long>(stats.packed_bins),
              100 * stats.packing_efficiency);
  std::printf("qwen-sft prepare_data, %d threads, best of %d: %.2f s  %7.2f MB/s  %11.0f tokens/s\n", cfg.num_threads,
              runs, best, mb / best, stats.train_tokens / best);
  return 0;
}
