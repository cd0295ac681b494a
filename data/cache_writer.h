// Writes the token cache (data/cache_file.h) while the sequences are made, so memory stays bounded however large
// the dataset: ids and masks go to disk through small buffers and only the offsets stay in memory. finish() lays
// out the sequence sections and maps them (the sets it returns are the ones a later run loads); commit() adds
// the statistics, the header and checksum, and renames the file into place atomically.
#pragma once
#include <filesystem>
#include <memory>
#include <stdexcept>

#include "data/cache_file.h"
#include "data/data_stats.h"
#include "data/sequence_sink.h"

namespace qsft {

// The cache could not be written (folder, disk): the caller can fall back to memory.
class CacheWriteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class CacheWriter : public SequenceSink {
 public:
  // in_order: the sequences will come train first, then eval, so ids are written to their place at once; otherwise
  // they are staged and sorted into train and eval by finish(). Throws CacheWriteError.
  CacheWriter(std::filesystem::path path, uint64_t key, bool in_order);
  ~CacheWriter() override;  // removes the temporary files unless committed

  void add(std::span<const int32_t> ids, std::span<const uint8_t> mask) override;  // throws CacheWriteError
  TrainEvalSets finish(const std::vector<uint8_t>& is_eval) override;              // throws CacheWriteError
  // Completes and renames the file; a failure is reported on stderr (the sets stay valid: the cache only saves time).
  void commit(const DataStats& stats);

 private:
  class Appender;
  std::unique_ptr<Appender> staging_file(const char* suffix);
  void copy_sequences(Appender& from, size_t token_bytes, const std::vector<uint8_t>& is_eval, uint8_t set);

  std::filesystem::path path_, tmp_;
  bool committed_ = false;
  CacheHeader header_{};
  std::unique_ptr<Appender> file_;        // the cache's temporary file, after the header
  std::unique_ptr<Appender> staged_ids_;  // null when in_order (ids go to file_)
  std::unique_ptr<Appender> staged_mask_;
  std::vector<uint64_t> offsets_{0};  // of every sequence added, in the order of adding
  std::vector<uint32_t> trained_;     // per sequence: its tokens with mask 1
};

}  // namespace qsft
