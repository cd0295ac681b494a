// Cache file layout (little-endian, every section 8-byte aligned):
//   Header | stats bytes | train offsets u64[n+1] | train ids i32[t] | train mask u8[t] | eval (the same three)
#include "data/token_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace qsft {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'Q', 'S', 'F', 'T', 'T', 'O', 'K', '1'};
constexpr uint64_t kFormatVersion = 2;  // of this layout and of how records become sequences: bump on change

struct Header {
  char magic[8];
  uint64_t version, key, checksum;  // checksum: hash of everything after the header
  uint64_t stats_bytes, train_sequences, train_tokens, eval_sequences, eval_tokens;
};

uint64_t aligned(uint64_t n) { return (n + 7) & ~uint64_t(7); }
uint64_t set_bytes(uint64_t sequences, uint64_t tokens) {
  return aligned(8 * (sequences + 1)) + aligned(4 * tokens) + aligned(tokens);
}

uint64_t hash_file(const std::string& path, uint64_t h) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return hash_bytes("(absent)", 8, h);
  std::vector<char> buf(4 << 20);
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    h = hash_bytes(buf.data(), size_t(in.gcount()), h);
  }
  return h;
}

uint64_t hash_text(const std::string& s, uint64_t h) {
  const uint64_t n = s.size();
  return hash_bytes(s.data(), s.size(), hash_bytes(&n, 8, h));
}

fs::path default_cache_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return fs::path(xdg) / "qwen-sft";
  if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".cache" / "qwen-sft";
  return fs::temp_directory_path() / "qwen-sft-cache";
}

// A read-only mapping of a whole file.
struct Mapping {
  void* base = MAP_FAILED;
  size_t size = 0;
  ~Mapping() {
    if (base != MAP_FAILED) munmap(base, size);
  }
  const char* bytes() const { return static_cast<const char*>(base); }
};

std::shared_ptr<Mapping> map_file(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return nullptr;
  auto m = std::make_shared<Mapping>();
  struct stat st {};
  if (fstat(fd, &st) == 0 && st.st_size >= off_t(sizeof(Header))) {
    m->size = size_t(st.st_size);
    m->base = mmap(nullptr, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
  }
  ::close(fd);
  return m->base == MAP_FAILED ? nullptr : m;
}

SequenceSet view_set(const std::shared_ptr<Mapping>& m, uint64_t& at, uint64_t sequences, uint64_t tokens) {
  const char* p = m->bytes() + at;
  std::span<const uint64_t> offsets(reinterpret_cast<const uint64_t*>(p), sequences + 1);
  p += aligned(8 * (sequences + 1));
  std::span<const int32_t> ids(reinterpret_cast<const int32_t*>(p), tokens);
  p += aligned(4 * tokens);
  std::span<const uint8_t> mask(reinterpret_cast<const uint8_t*>(p), tokens);
  at += set_bytes(sequences, tokens);
  return SequenceSet(m, offsets, ids, mask);
}

void write_padded(std::ostream& out, const void* data, uint64_t n) {
  static const char zeros[8] = {};
  out.write(static_cast<const char*>(data), std::streamsize(n));
  out.write(zeros, std::streamsize(aligned(n) - n));
}

void write_set(std::ostream& out, const SequenceSet& s) {
  write_padded(out, s.offsets().data(), 8 * s.offsets().size());
  write_padded(out, s.flat_ids().data(), 4 * s.flat_ids().size());
  write_padded(out, s.flat_mask().data(), s.flat_mask().size());
}

}  // namespace

uint64_t hash_bytes(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  auto mix = [](uint64_t h, uint64_t w) {
    h ^= w * 0x9e3779b97f4a7c15ull;
    h = (h << 31 | h >> 33) * 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 29);
  };
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = mix(h, w);
  }
  uint64_t tail = n;  // the length, so that trailing zeros count
  std::memcpy(&tail, p + i, n - i);
  return mix(mix(h, tail), n);
}

TokenCache::TokenCache(const DataConfig& cfg, const std::string& model_dir, const std::vector<std::string>& train_files,
                       const std::vector<std::string>& eval_files) {
  uint64_t h = hash_bytes(&kFormatVersion, 8, 0x51534654);
  for (const auto* list : {&train_files, &eval_files}) {
    h = hash_text("files", h);
    for (const std::string& f : *list) h = hash_file(f, h);
  }
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "vocab.json", "merges.txt"})
    h = hash_file((fs::path(model_dir) / name).string(), h);
  for (const std::string* s : {&cfg.format, &cfg.chat_format, &cfg.loss_mask, &cfg.truncation, &cfg.on_bad_record,
                               &cfg.prompt_template, &cfg.completion_template, &cfg.eos_token})
    h = hash_text(*s, h);
  const uint64_t numbers[] = {uint64_t(cfg.max_length), cfg.packing, cfg.append_eos, cfg.seed,
                              uint64_t(std::llround(cfg.eval_split * 1e12))};
  key_ = hash_bytes(numbers, sizeof numbers, h);
  char name[40];
  std::snprintf(name, sizeof name, "tokens-%016llx.bin", (unsigned long long)key_);
  path_ = (cfg.cache_dir.empty() ? default_cache_dir() : fs::path(cfg.cache_dir)) / name;
}

std::optional<PreparedData> TokenCache::load() const {
  std::shared_ptr<Mapping> m = map_file(path_);
  if (!m) return std::nullopt;
  Header h;
  std::memcpy(&h, m->bytes(), sizeof h);
  const uint64_t expected = sizeof h + aligned(h.stats_bytes) + set_bytes(h.train_sequences, h.train_tokens) +
                            set_bytes(h.eval_sequences, h.eval_tokens);
  try {
    if (std::memcmp(h.magic, kMagic, 8) != 0 || h.version != kFormatVersion || h.key != key_ || expected != m->size ||
        hash_bytes(m->bytes() + sizeof h, m->size - sizeof h, 0) != h.checksum)
      throw std::runtime_error("header, size or checksum do not match");
    PreparedData d;
    d.stats = decode_stats(std::string_view(m->bytes() + sizeof h, h.stats_bytes));
    uint64_t at = sizeof h + aligned(h.stats_bytes);
    d.train = view_set(m, at, h.train_sequences, h.train_tokens);
    d.eval = view_set(m, at, h.eval_sequences, h.eval_tokens);
    d.stats.from_cache = true;
    return d;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qwen-sft: token cache %s is not valid (%s); rebuilding it\n", path_.c_str(), e.what());
    std::error_code ec;
    fs::remove(path_, ec);
    return std::nullopt;
  }
}

void TokenCache::save(const PreparedData& d) const {
  const fs::path tmp = path_.string() + ".tmp" + std::to_string(::getpid());
  try {
    fs::create_directories(path_.parent_path());
    const std::string stats = encode_stats(d.stats);
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      Header h{};
      out.write(reinterpret_cast<const char*>(&h), sizeof h);  // rewritten below, with the checksum
      write_padded(out, stats.data(), stats.size());
      write_set(out, d.train);
      write_set(out, d.eval);
      if (!out.flush()) throw std::runtime_error("write failed");
    }
    std::shared_ptr<Mapping> m = map_file(tmp);
    if (!m) throw std::runtime_error("cannot read back " + tmp.string());
    Header h{};
    std::memcpy(h.magic, kMagic, 8);
    h.version = kFormatVersion;
    h.key = key_;
    h.checksum = hash_bytes(m->bytes() + sizeof h, m->size - sizeof h, 0);
    h.stats_bytes = stats.size();
    h.train_sequences = d.train.size();
    h.train_tokens = uint64_t(d.train.total_tokens());
    h.eval_sequences = d.eval.size();
    h.eval_tokens = uint64_t(d.eval.total_tokens());
    std::fstream out(tmp, std::ios::binary | std::ios::in | std::ios::out);
    out.write(reinterpret_cast<const char*>(&h), sizeof h);
    if (!out.flush()) throw std::runtime_error("write failed");
    out.close();
    fs::rename(tmp, path_);
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove(tmp, ec);
    std::fprintf(stderr, "qwen-sft: warning: could not write the token cache %s: %s\n", path_.c_str(), e.what());
  }
}

}  // namespace qsft
