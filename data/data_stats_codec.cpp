// DataStats <-> bytes: fields in declaration order, integers as 8 bytes, strings with their length first.
#include <cstring>
#include <stdexcept>

#include "data/data_stats.h"

namespace qsft {

namespace {

struct Writer {
  std::string out;
  void put(int64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
  void put(double v) { out.append(reinterpret_cast<const char*>(&v), 8); }
  void put(bool v) { put(int64_t(v)); }
  void put(const std::string& s) {
    put(int64_t(s.size()));
    out += s;
  }
  template <class T>
  void put(const std::vector<T>& v) {
    put(int64_t(v.size()));
    for (const T& x : v) put(x);
  }
  void put(const FileStats& f) {
    put(f.path);
    put(f.format);
    put(f.records);
    put(f.eval);
  }
};

struct Reader {
  std::string_view in;
  void bytes(void* to, size_t n) {
    if (in.size() < n) throw std::runtime_error("cached statistics are truncated");
    std::memcpy(to, in.data(), n);
    in.remove_prefix(n);
  }
  void get(int64_t& v) { bytes(&v, 8); }
  void get(double& v) { bytes(&v, 8); }
  void get(bool& v) {
    int64_t i;
    get(i);
    v = i != 0;
  }
  void get(std::string& s) {
    int64_t n;
    get(n);
    if (n < 0 || size_t(n) > in.size()) throw std::runtime_error("cached statistics are truncated");
    s.assign(in.substr(0, size_t(n)));
    in.remove_prefix(size_t(n));
  }
  template <class T>
  void get(std::vector<T>& v) {
    int64_t n;
    get(n);
    if (n < 0 || size_t(n) > in.size()) throw std::runtime_error("cached statistics are truncated");
    v.assign(size_t(n), T{});
    for (T& x : v) get(x);
  }
  void get(FileStats& f) {
    get(f.path);
    get(f.format);
    get(f.records);
    get(f.eval);
  }
};

// Every field but the per-run ones (seconds, from_cache, cache_path), in one order for both directions.
template <class Stats, class F>
void visit_fields(Stats& s, F&& f) {
  f(s.files), f(s.records), f(s.bad_records), f(s.bad_examples), f(s.truncated), f(s.dropped_too_long);
  f(s.dropped_no_trained), f(s.no_trained_examples), f(s.train_sequences), f(s.train_tokens);
  f(s.train_trained_tokens), f(s.eval_sequences), f(s.eval_tokens), f(s.eval_trained_tokens);
  f(s.length_histogram), f(s.max_length), f(s.packed_bins), f(s.packing_efficiency);
}

}  // namespace

std::string encode_stats(const DataStats& s) {
  Writer w;
  visit_fields(s, [&](const auto& x) { w.put(x); });
  return std::move(w.out);
}

DataStats decode_stats(std::string_view bytes) {
  Reader r{bytes};
  DataStats s;
  visit_fields(s, [&](auto& x) { r.get(x); });
  if (!r.in.empty()) throw std::runtime_error("cached statistics have extra bytes");
  return s;
}

}  // namespace qsft
