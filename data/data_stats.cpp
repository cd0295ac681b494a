#include "data/data_stats.h"

#include <algorithm>
#include <bit>
#include <cstdio>

namespace qsft {

namespace {

std::string format(const char* fmt, auto... args) {
  char buf[512];
  std::snprintf(buf, sizeof buf, fmt, args...);
  return buf;
}

double percent(int64_t part, int64_t whole) { return whole ? 100.0 * double(part) / double(whole) : 0.0; }

}  // namespace

void DataStats::add_length(int64_t tokens) {
  const int bucket = tokens < 32 ? 0 : int(std::bit_width(uint64_t(tokens))) - 5;
  ++length_histogram[std::min(size_t(bucket), length_histogram.size() - 1)];
}

void DataStats::add_bad_record(const std::string& message) {
  ++bad_records;
  if (bad_examples.size() < kExamplesKept) bad_examples.push_back(message);
}

void DataStats::add_no_trained(const std::string& where) {
  ++dropped_no_trained;
  if (no_trained_examples.size() < kExamplesKept) no_trained_examples.push_back(where);
}

std::string DataStats::report() const {
  std::string r;
  r += "files:\n";
  for (const FileStats& f : files)
    r += format("  %-6s %-18s %8lld records  %s\n", f.eval ? "eval" : "train", f.format.c_str(), (long long)f.records,
                f.path.c_str());
  r += format(
      "records: %lld read, %lld bad (skipped), %lld truncated, %lld dropped as longer than max_length %lld, "
      "%lld sequences dropped with no trained token\n",
      (long long)records, (long long)bad_records, (long long)truncated, (long long)dropped_too_long,
      (long long)max_length, (long long)dropped_no_trained);
  r += format("train: %lld sequences, %lld tokens, %lld trained (%.1f%%)\n", (long long)train_sequences,
              (long long)train_tokens, (long long)train_trained_tokens, percent(train_trained_tokens, train_tokens));
  if (eval_sequences)
    r += format("eval:  %lld sequences, %lld tokens, %lld trained (%.1f%%)\n", (long long)eval_sequences,
                (long long)eval_tokens, (long long)eval_trained_tokens, percent(eval_trained_tokens, eval_tokens));
  r += format("packing: %lld bins of %lld tokens, efficiency %.1f%%\n", (long long)packed_bins, (long long)max_length,
              100.0 * packing_efficiency);
  int64_t most = *std::max_element(length_histogram.begin(), length_histogram.end());
  int64_t total = 0;
  for (int64_t n : length_histogram) total += n;
  r += "record lengths (tokens, before truncation):\n";
  size_t first = 0, last = length_histogram.size();
  while (first < last && length_histogram[first] == 0) ++first;
  while (last > first && length_histogram[last - 1] == 0) --last;
  for (size_t k = first; k < last; ++k) {
    const long long lo = k == 0 ? 0 : 16ll << k, hi = (32ll << k) - 1;
    std::string bar(most ? size_t(40 * length_histogram[k] / most) : 0, '#');
    std::string range = k + 1 == length_histogram.size() ? format("%lld+", lo) : format("%lld-%lld", lo, hi);
    r += format("  %13s %8lld %5.1f%% %s\n", range.c_str(), (long long)length_histogram[k],
                percent(length_histogram[k], total), bar.c_str());
  }
  if (!bad_examples.empty()) {
    r += "bad records (first " + std::to_string(bad_examples.size()) + "):\n";
    for (auto& e : bad_examples) r += "  " + e + "\n";
  }
  if (!no_trained_examples.empty()) {
    r += "dropped with no trained token (first " + std::to_string(no_trained_examples.size()) + "):\n";
    for (auto& e : no_trained_examples) r += "  " + e + "\n";
  }
  r += format("time: %.2f s%s\n", seconds, from_cache ? " (from the token cache)" : "");
  if (!cache_path.empty()) r += "cache: " + cache_path + "\n";
  return r;
}

}  // namespace qsft
