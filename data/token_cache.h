// The token cache: a prepared dataset (train and eval sequences, statistics) in one file that is mapped, not
// read, on later runs. Its name is a hash of the data files' contents, the tokenizer and chat template files, and
// every option that changes the result, so any change makes a new cache. Written while the data is tokenized
// (data/cache_writer.h) to a temporary name and renamed; a file that does not check out (size, header, checksum)
// is ignored, removed and rebuilt.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/cache_writer.h"
#include "data/data_config.h"
#include "data/dataset.h"

namespace qsft {

class TokenCache {
 public:
  // Hashes the files (they are read once). cfg.cache_dir "" = $XDG_CACHE_HOME/qwen-sft (~/.cache/qwen-sft).
  TokenCache(const DataConfig& cfg, const std::string& model_dir, const std::vector<std::string>& train_files,
             const std::vector<std::string>& eval_files);

  const std::filesystem::path& path() const { return path_; }
  // The cached data, or nullopt when there is none or it is stale or corrupt.
  std::optional<PreparedData> load() const;
  // A writer of this cache (in_order: see CacheWriter), or null, with a warning on stderr, when it cannot be
  // created (e.g. a read-only folder): the cache only saves time.
  std::unique_ptr<CacheWriter> start_writing(bool in_order) const;

 private:
  uint64_t key_ = 0;
  std::filesystem::path path_;
};

}  // namespace qsft
