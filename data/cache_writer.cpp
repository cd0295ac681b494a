#include "data/cache_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "engine/base/sync_dir.h"

namespace qsft {

namespace fs = std::filesystem;

namespace {

constexpr size_t kBufferBytes = 1 << 20;

FileDescriptor create_file(const fs::path& path) {
  FileDescriptor fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) throw CacheWriteError("cannot create " + path.string() + ": " + std::strerror(errno));
  return fd;
}

}  // namespace

// Appends to a file from `at` on through a buffer; reads back what it wrote.
class CacheWriter::Appender {
 public:
  Appender(FileDescriptor fd, std::string name, uint64_t at) : fd_(std::move(fd)), name_(std::move(name)), end_(at) {
    buf_.reserve(kBufferBytes);
  }
  int fd() const { return fd_.get(); }
  uint64_t end() const { return end_ + buf_.size(); }

  void append(const void* data, size_t n) {
    if (buf_.size() + n > kBufferBytes) flush();
    if (n >= kBufferBytes) return write_out(static_cast<const char*>(data), n);
    buf_.insert(buf_.end(), static_cast<const char*>(data), static_cast<const char*>(data) + n);
  }
  void pad() {  // zeros up to a multiple of 8 bytes
    static const char zeros[8] = {};
    append(zeros, size_t(-end() & 7));
  }
  void flush() {
    write_out(buf_.data(), buf_.size());
    buf_.clear();
  }
  void read(uint64_t at, char* to, size_t n) const {  // of what was flushed
    while (n > 0) {
      const ssize_t got = ::pread(fd_.get(), to, n, off_t(at));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) throw CacheWriteError("cannot read back " + name_ + ": " + (got ? std::strerror(errno) : "short"));
      to += got, at += uint64_t(got), n -= size_t(got);
    }
  }

 private:
  void write_out(const char* p, size_t n) {
    while (n > 0) {
      const ssize_t put = ::pwrite(fd_.get(), p, n, off_t(end_));
      if (put < 0 && errno == EINTR) continue;
      if (put <= 0) throw CacheWriteError("cannot write " + name_ + ": " + std::strerror(put ? errno : ENOSPC));
      p += put, end_ += uint64_t(put), n -= size_t(put);
    }
  }

  FileDescriptor fd_;
  std::string name_;
  uint64_t end_;  // of the bytes written out
  std::vector<char> buf_;
};

CacheWriter::CacheWriter(fs::path path, uint64_t key, bool in_order)
    : path_(std::move(path)), tmp_(path_.string() + ".tmp" + std::to_string(::getpid())) {
  header_.key = key;
  std::error_code ec;
  fs::create_directories(path_.parent_path(), ec);
  if (ec) throw CacheWriteError("cannot create " + path_.parent_path().string() + ": " + ec.message());
  staged_mask_ = staging_file(".mask");
  if (!in_order) staged_ids_ = staging_file(".ids");
  file_ = std::make_unique<Appender>(create_file(tmp_), tmp_.string(), sizeof(CacheHeader));  // last: nothing to undo
}

CacheWriter::~CacheWriter() {
  if (committed_) return;
  std::error_code ec;
  fs::remove(tmp_, ec);
}

std::unique_ptr<CacheWriter::Appender> CacheWriter::staging_file(const char* suffix) {
  const fs::path path = tmp_.string() + suffix;
  FileDescriptor fd = create_file(path);
  ::unlink(path.c_str());  // gone with the descriptor, even after a crash
  return std::make_unique<Appender>(std::move(fd), path.string(), 0);
}

void CacheWriter::add(std::span<const int32_t> ids, std::span<const uint8_t> mask) {
  if (ids.size() != mask.size()) throw std::invalid_argument("CacheWriter::add: ids and mask differ in length");
  (staged_ids_ ? *staged_ids_ : *file_).append(ids.data(), ids.size_bytes());
  staged_mask_->append(mask.data(), mask.size());
  offsets_.push_back(offsets_.back() + ids.size());
  trained_.push_back(uint32_t(std::ranges::count(mask, uint8_t(1))));
}

// Appends to the file the tokens (token_bytes each) of the sequences of `set`, read back from `from`.
void CacheWriter::copy_sequences(Appender& from, size_t token_bytes, const std::vector<uint8_t>& is_eval, uint8_t set) {
  from.flush();
  std::vector<char> buf(kBufferBytes);
  for (size_t s = 0, n = is_eval.size(); s < n;) {
    size_t e = s;
    while (e < n && is_eval[e] == is_eval[s]) ++e;  // a run of sequences of one set
    if (is_eval[s] == set) {
      for (uint64_t at = offsets_[s] * token_bytes, to = offsets_[e] * token_bytes; at < to;) {
        const size_t chunk = size_t(std::min<uint64_t>(buf.size(), to - at));
        from.read(at, buf.data(), chunk);
        file_->append(buf.data(), chunk);
        at += chunk;
      }
    }
    s = e;
  }
}

TrainEvalSets CacheWriter::finish(const std::vector<uint8_t>& is_eval) {
  if (is_eval.size() + 1 != offsets_.size()) throw std::invalid_argument("CacheWriter::finish: one flag per sequence");
  if (!staged_ids_ && !std::ranges::is_sorted(is_eval))
    throw std::invalid_argument("CacheWriter::finish: eval sequences before train ones, but the writer is in order");
  for (size_t s = 0; s < is_eval.size(); ++s) {
    const uint64_t length = offsets_[s + 1] - offsets_[s];
    ++(is_eval[s] ? header_.eval_sequences : header_.train_sequences);
    (is_eval[s] ? header_.eval_tokens : header_.train_tokens) += length;
    (is_eval[s] ? header_.eval_trained_tokens : header_.train_trained_tokens) += trained_[s];
  }
  for (uint8_t set : {0, 1})
    if (staged_ids_) copy_sequences(*staged_ids_, sizeof(int32_t), is_eval, set);
  file_->pad();
  for (uint8_t set : {0, 1}) copy_sequences(*staged_mask_, 1, is_eval, set);
  file_->pad();
  for (uint8_t set : {0, 1}) {
    uint64_t offset = 0;
    file_->append(&offset, 8);
    for (size_t s = 0; s < is_eval.size(); ++s) {
      if (is_eval[s] != set) continue;
      offset += offsets_[s + 1] - offsets_[s];
      file_->append(&offset, 8);
    }
  }
  file_->flush();
  staged_ids_.reset();  // the staging files go; their space is free again
  staged_mask_.reset();
  const uint64_t sequences_end = CacheLayout(header_).stats;
  if (file_->end() != sequences_end) throw std::logic_error("CacheWriter::finish: the layout does not add up");
  try {
    return view_sets(std::make_shared<const Mapping>(file_->fd(), sequences_end), header_);
  } catch (const std::runtime_error& e) {
    throw CacheWriteError(tmp_.string() + ": " + e.what());
  }
}

void CacheWriter::commit(const DataStats& stats) {
  try {
    const std::string bytes = encode_stats(stats);
    file_->append(bytes.data(), bytes.size());
    file_->flush();
    std::memcpy(header_.magic, kCacheMagic, 8);
    header_.version = kCacheFormatVersion;
    header_.stats_bytes = bytes.size();
    header_.checksum = checksum_file(file_->fd(), sizeof header_, file_->end());
    if (::pwrite(file_->fd(), &header_, sizeof header_, 0) != ssize_t(sizeof header_))
      throw CacheWriteError(std::string("cannot write the header: ") + std::strerror(errno));
    fs::rename(tmp_, path_);
    committed_ = true;
    if (int e = sync_directory(path_.parent_path()))  // the rename survives a power loss
      throw CacheWriteError(std::string("cannot flush its folder: ") + std::strerror(e));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qwen-sft: warning: could not write the token cache %s: %s\n", path_.c_str(), e.what());
  }
}

}  // namespace qsft
