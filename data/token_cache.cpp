#include "data/token_cache.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "data/cache_file.h"
#include "data/hash.h"

namespace qsft {

namespace fs = std::filesystem;

namespace {

uint64_t hash_file(const std::string& path, uint64_t h) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return hash_bytes("(absent)", 8, h);
  Hasher content(h);
  std::vector<char> buf(4 << 20);
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    content.update(buf.data(), size_t(in.gcount()));
  }
  return content.digest();
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

// Removes the temporaries (tokens-<key>.bin.tmp<pid>) of writers that died before renaming them: those whose
// pid is no longer alive. A live writer's temporary, in this or another process, stays.
void remove_dead_writers_temporaries(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const size_t at = name.rfind(".bin.tmp");
    if (name.rfind("tokens-", 0) != 0 || at == std::string::npos) continue;
    const std::string pid = name.substr(at + 8);
    if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (::kill(pid_t(std::stol(pid)), 0) != 0 && errno == ESRCH) fs::remove(e.path(), ec);
  }
}

}  // namespace

TokenCache::TokenCache(const DataConfig& cfg, const std::string& model_dir, const std::vector<std::string>& train_files,
                       const std::vector<std::string>& eval_files) {
  uint64_t h = hash_bytes(&kCacheFormatVersion, 8, 0x51534654);
  for (const auto* list : {&train_files, &eval_files}) {
    h = hash_text("files", h);
    for (const std::string& f : *list) h = hash_file(f, h);
  }
  for (const char* name :
       {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "vocab.json", "merges.txt"})
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
  remove_dead_writers_temporaries(path_.parent_path());
  FileDescriptor fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  try {
    CacheHeader h{};
    struct stat st {};
    if (fstat(fd.get(), &st) != 0 || uint64_t(st.st_size) < sizeof h || ::pread(fd.get(), &h, sizeof h, 0) != sizeof h)
      throw std::runtime_error("shorter than a header");
    if (std::memcmp(h.magic, kCacheMagic, 8) != 0 || h.version != kCacheFormatVersion || h.key != key_ ||
        CacheLayout(h).end != uint64_t(st.st_size) ||
        checksum_file(fd.get(), sizeof h, uint64_t(st.st_size)) != h.checksum)
      throw std::runtime_error("header, size or checksum do not match");
    auto m = std::make_shared<const Mapping>(fd.get(), uint64_t(st.st_size));
    PreparedData d;
    d.stats = decode_stats(std::string_view(m->bytes() + CacheLayout(h).stats, h.stats_bytes));
    d.stats.from_cache = true;
    TrainEvalSets sets = view_sets(m, h);
    d.train = std::move(sets.train);
    d.eval = std::move(sets.eval);
    return d;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qwen-sft: token cache %s is not valid (%s); rebuilding it\n", path_.c_str(), e.what());
    std::error_code ec;
    fs::remove(path_, ec);
    return std::nullopt;
  }
}

std::unique_ptr<CacheWriter> TokenCache::start_writing(bool in_order) const {
  try {
    return std::make_unique<CacheWriter>(path_, key_, in_order);
  } catch (const CacheWriteError& e) {
    std::fprintf(stderr, "qwen-sft: warning: could not write the token cache %s: %s; keeping the data in memory\n",
                 path_.c_str(), e.what());
    return nullptr;
  }
}

}  // namespace qsft
