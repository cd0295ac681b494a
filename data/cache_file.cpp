#include "data/cache_file.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "data/hash.h"

namespace qsft {

namespace {

uint64_t aligned(uint64_t n) { return (n + 7) & ~uint64_t(7); }

}  // namespace

CacheLayout::CacheLayout(const CacheHeader& h) {
  const uint64_t tokens = h.train_tokens + h.eval_tokens;
  ids = sizeof(CacheHeader);
  mask = ids + aligned(4 * tokens);
  train_offsets = mask + aligned(tokens);
  eval_offsets = train_offsets + 8 * (h.train_sequences + 1);
  stats = eval_offsets + 8 * (h.eval_sequences + 1);
  end = stats + h.stats_bytes;
}

FileDescriptor& FileDescriptor::operator=(FileDescriptor&& o) noexcept {
  std::swap(fd_, o.fd_);
  return *this;
}

FileDescriptor::~FileDescriptor() {
  if (fd_ >= 0) ::close(fd_);
}

Mapping::Mapping(int fd, uint64_t size) : size_(size) {
  base_ = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (base_ == MAP_FAILED) throw std::runtime_error(std::string("mmap: ") + std::strerror(errno));
}

Mapping::~Mapping() { ::munmap(base_, size_); }

uint64_t checksum_file(int fd, uint64_t from, uint64_t to) {
  std::vector<char> buf(1 << 20);
  Hasher h;
  while (from < to) {
    const ssize_t got = ::pread(fd, buf.data(), std::min<uint64_t>(buf.size(), to - from), off_t(from));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) throw std::runtime_error(got == 0 ? "file is shorter than its header says" : std::strerror(errno));
    h.update(buf.data(), size_t(got));
    from += uint64_t(got);
  }
  return h.digest();
}

TrainEvalSets view_sets(const std::shared_ptr<const Mapping>& m, const CacheHeader& h) {
  const CacheLayout at(h);
  if (at.stats > m->size()) throw std::runtime_error("the mapping is shorter than the sequences");
  const auto* ids = reinterpret_cast<const int32_t*>(m->bytes() + at.ids);
  const auto* mask = reinterpret_cast<const uint8_t*>(m->bytes() + at.mask);
  auto offsets = [&](uint64_t where, uint64_t sequences) {
    return std::span(reinterpret_cast<const uint64_t*>(m->bytes() + where), sequences + 1);
  };
  return {SequenceSet(m, offsets(at.train_offsets, h.train_sequences), {ids, h.train_tokens}, {mask, h.train_tokens},
                      int64_t(h.train_trained_tokens)),
          SequenceSet(m, offsets(at.eval_offsets, h.eval_sequences), {ids + h.train_tokens, h.eval_tokens},
                      {mask + h.train_tokens, h.eval_tokens}, int64_t(h.eval_trained_tokens))};
}

}  // namespace qsft
