// A small JSON writer (values built in memory, then printed) and atomic file writing.
// Used for adapter_config.json (indent 2, sorted keys, as PEFT writes it), config.json, tokenizer files and
// metrics.jsonl (compact, one object per line). Reading JSON is simdjson's job, in .cpp files only.
#pragma once
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace qsft {

struct JsonStyle {
  int indent = -1;         // < 0: compact, one line, no spaces; >= 0: newlines, this many spaces per level
  bool sort_keys = false;  // object keys in byte (= code point) order instead of insertion order
};

class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;  // insertion order; set() replaces a key in place

  Json(std::nullptr_t = nullptr) : v_(nullptr) {}
  Json(bool b) : v_(b) {}
  template <std::integral I>
  requires(!std::same_as<I, bool>) Json(I i) : v_(checked_int64(i)) {}
  Json(float f) : v_(f) {}   // printed as the shortest text that reads back as the same float
  Json(double d) : v_(d) {}  // printed as the shortest text that reads back as the same double
  Json(const char* s) : v_(std::string(s)) {}
  Json(std::string s) : v_(std::move(s)) {}
  Json(std::string_view s) : v_(std::string(s)) {}

  static Json array(std::initializer_list<Json> items = {}) { return Json(Array(items)); }
  static Json object() { return Json(Object{}); }

  Json& push(Json item);                        // append to an array
  Json& set(std::string_view key, Json value);  // add or replace a key of an object (linear search); *this

  // The text. Strings: UTF-8 passed through, '"' '\\' and control characters escaped (\n, \t, ..., \u00XX).
  // Floats: Python repr style (0.0, 1e-06, 1000000.0); NaN and infinities, which JSON lacks, as null.
  std::string dump(const JsonStyle& style = {}) const;

 private:
  template <class I>
  static int64_t checked_int64(I i);
  explicit Json(Array a) : v_(std::move(a)) {}
  explicit Json(Object o) : v_(std::move(o)) {}
  void dump_to(std::string& out, const JsonStyle& style, int depth) const;

  std::variant<std::nullptr_t, bool, int64_t, float, double, std::string, Array, Object> v_;
};

template <class I>
int64_t Json::checked_int64(I i) {
  if constexpr (std::is_unsigned_v<I> && sizeof(I) >= sizeof(int64_t))
    if (i > uint64_t(INT64_MAX)) throw std::out_of_range("Json: integer above INT64_MAX");
  return int64_t(i);
}

// Write a file so that `path` is either untouched or complete: the bytes go to path + ".tmp<pid>", which is renamed
// over `path` once written and flushed, then the folder is flushed (the rename survives a power loss); on any
// failure the temporary is removed and InputError names the path.
void write_file_atomic(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write);
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

}  // namespace qsft
