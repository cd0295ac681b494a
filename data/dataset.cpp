#include "data/dataset.h"

#include <chrono>
#include <cmath>
#include <filesystem>

#include "data/batching.h"
#include "data/example_encoder.h"
#include "data/file_encoder.h"
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

int32_t eos_id(const DataConfig& cfg, const Tokenizer& tok) {
  if (cfg.eos_token.empty()) return tok.eos_id();
  int32_t id = tok.token_id(cfg.eos_token);
  if (id < 0) throw InputError("data.eos_token: '" + cfg.eos_token + "' is not a token of the tokenizer");
  return id;
}

// Records drawn for eval (eval_split of them, at least one) from (seed); each record's sequences go together.
void split_off_eval(const DataConfig& cfg, EncodedSplit& all, PreparedData& out) {
  SequenceSet set = all.sequences.finish();
  std::vector<uint8_t> is_eval(all.records_kept, 0);
  size_t n_eval = std::min<size_t>(all.records_kept, std::max<size_t>(1, size_t(std::llround(cfg.eval_split * all.records_kept))));
  if (n_eval == all.records_kept) n_eval = all.records_kept > 1 ? all.records_kept - 1 : 0;
  std::vector<uint32_t> order = shuffled_indices(all.records_kept, cfg.seed, kEvalSplitStream);
  for (size_t i = 0; i < n_eval; ++i) is_eval[order[i]] = 1;
  SequenceSetBuilder train, eval;
  for (size_t s = 0; s < set.size(); ++s) (is_eval[all.record_of[s]] ? eval : train).add(set, s);
  out.train = train.finish();
  out.eval = eval.finish();
}

PreparedData tokenize(const DataConfig& cfg, const std::string& model_dir, const std::vector<std::string>& train_files,
                      const std::vector<std::string>& eval_files, bool show_progress) {
  Tokenizer tok = Tokenizer::load(model_dir);
  std::unique_ptr<ChatFormat> chat;
  std::string chat_error;
  try {
    chat = ChatFormat::for_model(model_dir, cfg.chat_format);
  } catch (const InputError& e) {
    if (!cfg.chat_format.empty()) throw;
    chat_error = std::string("a conversation needs a chat format: ") + e.what();
  }
  ExampleEncoder encoder(tok, chat.get(), chat_error,
                         {loss_mask_from_name(cfg.loss_mask), cfg.append_eos, cfg.append_eos ? eos_id(cfg, tok) : -1});
  FileEncoder files(cfg, encoder);
  PreparedData out;
  Progress progress("tokenizing", total_size(train_files) + total_size(eval_files), show_progress);
  uint64_t bytes_done = 0;
  EncodedSplit train;
  files.encode(train_files, false, train, out.stats, progress, bytes_done);
  if (!eval_files.empty()) {
    EncodedSplit eval;
    files.encode(eval_files, true, eval, out.stats, progress, bytes_done);
    out.train = train.sequences.finish();
    out.eval = eval.sequences.finish();
  } else if (cfg.eval_split > 0) {
    split_off_eval(cfg, train, out);
  } else {
    out.train = train.sequences.finish();
  }
  progress.finish();
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

}  // namespace

PreparedData prepare_data(const DataConfig& cfg, const std::string& model_dir, bool show_progress) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<std::string> train_files = expand_data_files(cfg.train_files, "data.train_files");
  const std::vector<std::string> eval_files = expand_data_files(cfg.eval_files, "data.eval_files");
  const TokenCache cache(cfg, model_dir, train_files, eval_files);
  std::optional<PreparedData> data = cache.load();
  if (!data) {
    data = tokenize(cfg, model_dir, train_files, eval_files, show_progress);
    count_sequences(cfg, *data);
    cache.save(*data);
  }
  data->stats.cache_path = cache.path().string();
  data->stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return std::move(*data);
}

}  // namespace qsft
