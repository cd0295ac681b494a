#include "data/dataset.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "data/batching.h"
#include "data/file_encoder.h"
#include "data/record_encoder.h"
#include "data/shuffle.h"
#include "data/token_cache.h"
#include "engine/base/error.h"

namespace qsft {

namespace {

namespace fs = std::filesystem;

constexpr uint64_t kEvalSplitStream = uint64_t(1) << 32;

uint64_t total_size(const std::vector<std::string>& files) {
  uint64_t n = 0;
  for (auto& f : files) n += fs::file_size(f);
  return n;
}

// Whether the eval sequences are the eval files' ones, which follow the train ones (no eval_split draw).
bool eval_in_order(const DataConfig& cfg, const std::vector<std::string>& eval_files) {
  return !eval_files.empty() || cfg.eval_split <= 0;
}

// Per sequence: 1 for eval. In order: the sequences from first_eval on. Otherwise those of eval_split of the
// records (at least one, never all) drawn from (seed), each record's sequences together.
std::vector<uint8_t> eval_flags(const DataConfig& cfg, bool in_order, const EncodedRecords& all, size_t first_eval) {
  std::vector<uint8_t> is_eval(all.record_of.size(), 0);
  if (in_order) {
    std::fill(is_eval.begin() + ptrdiff_t(first_eval), is_eval.end(), 1);
    return is_eval;
  }
  const size_t records = all.records_kept;
  size_t n_eval = std::min<size_t>(records, std::max<size_t>(1, size_t(std::llround(cfg.eval_split * records))));
  if (n_eval == records) n_eval = records > 1 ? records - 1 : 0;
  std::vector<uint8_t> record_is_eval(records, 0);
  std::vector<uint32_t> order = shuffled_indices(records, cfg.seed, kEvalSplitStream);
  for (size_t i = 0; i < n_eval; ++i) record_is_eval[order[i]] = 1;
  for (size_t s = 0; s < is_eval.size(); ++s) is_eval[s] = record_is_eval[all.record_of[s]];
  return is_eval;
}

PreparedData tokenize(const DataConfig& cfg, const std::string& model_dir, const std::vector<std::string>& train_files,
                      const std::vector<std::string>& eval_files, bool show_progress, SequenceSink& sink) {
  const ModelEncoder encoder(cfg, model_dir);
  FileEncoder files(cfg, encoder.examples());
  PreparedData out;
  DataProgress progress("tokenizing", total_size(train_files) + total_size(eval_files), show_progress);
  uint64_t bytes_done = 0;
  EncodedRecords all(sink);
  files.encode(train_files, false, all, out.stats, progress, bytes_done);
  const size_t first_eval = all.record_of.size();
  files.encode(eval_files, true, all, out.stats, progress, bytes_done);
  TrainEvalSets sets = sink.finish(eval_flags(cfg, eval_in_order(cfg, eval_files), all, first_eval));
  out.train = std::move(sets.train);
  out.eval = std::move(sets.eval);
  progress.finish();
  if (all.turns_not_alternating > 0)
    std::fprintf(stderr,
                 "qwen-sft: warning: %lld ShareGPT conversations do not alternate user and assistant turns (the "
                 "first: %s); they are trained as written\n",
                 (long long)all.turns_not_alternating, all.first_not_alternating.c_str());
  return out;
}

void count_sequences(const DataConfig& cfg, PreparedData& d) {
  DataStats& s = d.stats;
  s.max_length = cfg.max_length;
  s.train_sequences = int64_t(d.train.size());
  s.train_tokens = d.train.total_tokens();
  s.train_trained_tokens = d.train.trained_tokens();
  s.eval_sequences = int64_t(d.eval.size());
  s.eval_tokens = d.eval.total_tokens();
  s.eval_trained_tokens = d.eval.trained_tokens();
  std::vector<uint32_t> order(d.train.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = uint32_t(i);
  if (cfg.packing) {
    Bins bins = pack_best_fit_decreasing(d.train, order, cfg.max_length);
    s.packed_bins = int64_t(bins.size());
    s.packing_efficiency = packing_efficiency(d.train, bins, cfg.max_length);
  }
}

// Tokenizes into the cache file as it goes (bounded memory), or into memory when the cache cannot be written.
PreparedData tokenize_and_cache(const DataConfig& cfg, const std::string& model_dir,
                                const std::vector<std::string>& train_files, const std::vector<std::string>& eval_files,
                                bool show_progress, const TokenCache& cache) {
  if (std::unique_ptr<CacheWriter> writer = cache.start_writing(eval_in_order(cfg, eval_files))) {
    try {
      PreparedData d = tokenize(cfg, model_dir, train_files, eval_files, show_progress, *writer);
      count_sequences(cfg, d);
      writer->commit(d.stats);
      return d;
    } catch (const CacheWriteError& e) {
      std::fprintf(stderr, "qwen-sft: warning: could not write the token cache: %s; tokenizing again, in memory\n",
                   e.what());
    }
  }
  MemorySink memory;
  PreparedData d = tokenize(cfg, model_dir, train_files, eval_files, show_progress, memory);
  count_sequences(cfg, d);
  return d;
}

// No train sequence at all is an InputError that says where the records went.
void require_train_sequences(const PreparedData& d, const std::vector<std::string>& train_files) {
  if (d.train.size() > 0) return;
  const DataStats& s = d.stats;
  int64_t records = 0;
  for (const FileStats& f : s.files) records += f.eval ? 0 : f.records;
  std::string files;
  for (const std::string& f : train_files) files += (files.empty() ? "" : ", ") + f;
  std::string why;
  if (records == 0) {
    why = "the files hold no records";
  } else {
    why = std::to_string(s.records) + " records read: " + std::to_string(s.bad_records) + " bad (skipped), " +
          std::to_string(s.dropped_too_long) + " longer than max_length " + std::to_string(s.max_length) +
          " (dropped), " + std::to_string(s.dropped_no_trained) + " sequences with no trained token";
    if (!s.bad_examples.empty())
      why += "; first bad record: " + s.bad_examples.front();
    else if (!s.no_trained_examples.empty())
      why += "; first with no trained token: " + s.no_trained_examples.front();
  }
  throw InputError("data.train_files (" + files + "): nothing to train on: " + why);
}

}  // namespace

PreparedData prepare_data(const DataConfig& cfg, const std::string& model_dir, bool show_progress) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<std::string> train_files = expand_data_files(cfg.train_files, "data.train_files");
  const std::vector<std::string> eval_files = expand_data_files(cfg.eval_files, "data.eval_files");
  const TokenCache cache(cfg, model_dir, train_files, eval_files);
  std::optional<PreparedData> data = cache.load();
  if (!data) data = tokenize_and_cache(cfg, model_dir, train_files, eval_files, show_progress, cache);
  try {
    require_train_sequences(*data, train_files);
  } catch (const InputError&) {  // a failed run leaves no cache behind (the next one says the same, from scratch)
    std::error_code ignored;
    std::filesystem::remove(cache.path(), ignored);
    throw;
  }
  data->stats.cache_path = cache.path().string();
  data->stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return std::move(*data);
}

}  // namespace qsft
