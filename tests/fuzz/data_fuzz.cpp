// Fuzzes a dataset file through the data pipeline's entry point (prepare_data) with a small tokenizer (the tiny
// one `init-model` writes): reading records (JSONL, JSON array, value stream; the reader's mode comes from the
// file name), format detection or a forced format, conversion to examples, the chat format and loss mask,
// truncation, the eval split, packing; then an epoch's micro-batches. Bad records are skipped or stop the run with
// an InputError that names the data file (or the data.* key at fault). Each input runs twice: the second run
// must load from the token cache the first one wrote exactly the sequences the first one made; a failed run
// leaves no file in the cache folder.
//
// Input: two option bytes, then the file.
//   byte 0: bits 0-1 file name (.jsonl, .json, .ndjson, .json.gz), bits 2-4 format (auto or a forced one),
//           bits 5-6 loss mask, bit 7 eval_split 0.3 (else none)
//   byte 1: bit 0 chat format (recognised: qwen2.5; or deepseek-r1-distill), bits 1-2 truncation,
//           bit 3 append_eos, bit 4 on_bad_record (skip, error), bit 5 packing
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "data/batching.h"
#include "data/dataset.h"
#include "engine/io/tiny_tokenizer.h"
#include "fuzz_util.h"

namespace {

using namespace qsft;
namespace fs = std::filesystem;

constexpr int64_t kMaxLength = 48;  // short, so that truncation and splitting happen

// The model folder: the tiny tokenizer (and its Qwen2.5 chat template), written once.
const std::string& model_dir() {
  static const std::string dir = [] {
    const fs::path d = fuzz::scratch_dir() / "tiny";
    fs::create_directories(d);
    write_tiny_tokenizer(d, kMaxLength);
    return d.string();
  }();
  return dir;
}

DataConfig config(const std::string& path, uint8_t opt0, uint8_t opt1) {
  static const char* const formats[] = {"auto", "messages", "sharegpt", "alpaca", "prompt_completion",
                                        "text", "template", "tokens"};
  static const char* const masks[] = {"auto", "assistant", "completion", "all"};
  static const char* const truncations[] = {"keep_start", "drop", "split", "keep_start"};
  DataConfig c;
  c.train_files = {path};
  c.format = formats[(opt0 >> 2) & 7];
  c.loss_mask = masks[(opt0 >> 5) & 3];
  c.eval_split = opt0 & 128 ? 0.3 : 0;
  if (c.format == "template") {
    c.prompt_template = "{instruction}\n{input}";
    c.completion_template = "{output}";
  }
  c.chat_format = opt1 & 1 ? "deepseek-r1-distill" : "";
  c.truncation = truncations[(opt1 >> 1) & 3];
  c.append_eos = opt1 & 8;
  c.on_bad_record = opt1 & 16 ? "error" : "skip";
  c.packing = opt1 & 32;
  c.max_length = kMaxLength;
  c.cache_dir = (fuzz::scratch_dir() / "cache").string();
  c.num_threads = 1;
  return c;
}

bool same(const SequenceSet& a, const SequenceSet& b) {
  return std::ranges::equal(a.offsets(), b.offsets()) && std::ranges::equal(a.flat_ids(), b.flat_ids()) &&
         std::ranges::equal(a.flat_mask(), b.flat_mask()) && a.trained_tokens() == b.trained_tokens();
}

void run(const DataConfig& cfg) {
  const PreparedData fresh = prepare_data(cfg, model_dir(), false);
  const PreparedData cached = prepare_data(cfg, model_dir(), false);
  fuzz::require(!fresh.stats.from_cache && cached.stats.from_cache, "the second run loads the cache");
  fuzz::require(same(fresh.train, cached.train) && same(fresh.eval, cached.eval), "the cache holds what was made");
  DataStats stats = cached.stats;
  stats.from_cache = false;
  stats.seconds = fresh.stats.seconds;
  fuzz::require(encode_stats(stats) == encode_stats(fresh.stats), "the cache holds the statistics");
  for (const auto& micro_batch : plan_epoch(fresh.train, cfg.max_length, 2, 0, 7, 1, cfg.packing)) {
    const PackedBatch b = make_batch(fresh.train, micro_batch);
    fuzz::require(b.num_tokens() <= 2 * cfg.max_length, "a micro-batch holds at most its two bins' tokens");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const char* const names[] = {"data.jsonl", "data.json", "data.ndjson", "data.json.gz"};
  const std::string path = fuzz::write_file(names[data[0] & 3], {reinterpret_cast<const char*>(data) + 2, size - 2});
  const DataConfig cfg = config(path, data[0], data[1]);
  bool failed = true;
  fuzz::expect_input_errors({path, "data."}, [&] {
    run(cfg);
    failed = false;
  });
  if (failed && fs::exists(cfg.cache_dir))
    fuzz::require(fs::is_empty(cfg.cache_dir), "a failed run leaves nothing in the cache folder");
  fs::remove_all(cfg.cache_dir);
  fs::remove(path);
  return 0;
}
