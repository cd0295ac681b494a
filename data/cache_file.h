// The token cache file's layout, shared by its reader (data/token_cache.cpp) and its writer (data/cache_writer.cpp).
// Little-endian; the sections are 8-byte aligned:
//   Header | ids i32[train tokens + eval tokens] | mask u8[the same] | train offsets u64[n+1] | eval offsets u64[m+1]
//   | stats bytes (data/data_stats.h)
// Train's ids and mask come first in their sections, eval's follow; each set's offsets start at 0.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>

#include "data/sequence_set.h"

namespace qsft {

inline constexpr char kCacheMagic[8] = {'Q', 'S', 'F', 'T', 'T', 'O', 'K', '1'};
// Of this layout and of how records become sequences: bump on change (it is part of the cache key too).
inline constexpr uint64_t kCacheFormatVersion = 3;

struct CacheHeader {
  char magic[8];
  uint64_t version, key, checksum;  // checksum: hash of everything after the header
  uint64_t stats_bytes, train_sequences, train_tokens, train_trained_tokens, eval_sequences, eval_tokens,
      eval_trained_tokens;
};

// Where each section starts, from a header's counts.
struct CacheLayout {
  uint64_t ids, mask, train_offsets, eval_offsets, stats, end;
  explicit CacheLayout(const CacheHeader& h);
};

// An open file descriptor, closed on destruction (-1: none).
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd = -1) : fd_(fd) {}
  FileDescriptor(FileDescriptor&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  FileDescriptor& operator=(FileDescriptor&& o) noexcept;
  ~FileDescriptor();
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_;
};

// A read-only mapping of the first `size` bytes of a file.
class Mapping {
 public:
  Mapping(int fd, uint64_t size);  // throws std::runtime_error when mmap fails
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  const char* bytes() const { return static_cast<const char*>(base_); }
  uint64_t size() const { return size_; }

 private:
  void* base_;
  uint64_t size_;
};

// The hash of bytes [from, to) of a file, read through a small buffer: checking a cache does not pull it into the
// process's memory. Throws std::runtime_error when the file is shorter or cannot be read.
uint64_t checksum_file(int fd, uint64_t from, uint64_t to);

// The train and eval sequences of a mapped cache file (its header's counts).
TrainEvalSets view_sets(const std::shared_ptr<const Mapping>& m, const CacheHeader& h);

}  // namespace qsft
