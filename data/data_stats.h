// What preparing a dataset found: records per file and format, tokens, what was truncated or dropped and why,
// the length distribution and packing efficiency. report() is the text `qwen-sft data` prints.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qsft {

struct FileStats {
  std::string path;
  std::string format;
  int64_t records = 0;
  bool eval = false;
};

struct DataStats {
  static constexpr size_t kExamplesKept = 5;

  std::vector<FileStats> files;
  int64_t records = 0;                    // records read, all files
  int64_t bad_records = 0;                // skipped (on_bad_record: skip)
  std::vector<std::string> bad_examples;  // the first few, "file line N: field: reason"
  int64_t truncated = 0;                  // records longer than max_length, cut (keep_start) or split
  int64_t dropped_too_long = 0;           // records longer than max_length (truncation: drop)
  int64_t dropped_no_trained = 0;         // sequences left with no trained token
  std::vector<std::string> no_trained_examples;
  int64_t train_sequences = 0, train_tokens = 0, train_trained_tokens = 0;
  int64_t eval_sequences = 0, eval_tokens = 0, eval_trained_tokens = 0;
  // Record lengths in tokens before truncation: bucket 0 counts [0, 32), bucket k >= 1 [2^(k+4), 2^(k+5)), the
  // last bucket also everything longer.
  std::vector<int64_t> length_histogram = std::vector<int64_t>(14, 0);
  int64_t max_length = 0;
  int64_t packed_bins = 0;
  double packing_efficiency = 0;  // train tokens / (bins * max_length), best-fit decreasing
  double seconds = 0;
  bool from_cache = false;
  std::string cache_path;

  void add_length(int64_t tokens);
  void add_bad_record(const std::string& message);
  void add_no_trained(const std::string& where);
  std::string report() const;
};

// DataStats as bytes (for the token cache) and back; decode_stats throws std::runtime_error on bad bytes.
std::string encode_stats(const DataStats& s);
DataStats decode_stats(std::string_view bytes);

}  // namespace qsft
