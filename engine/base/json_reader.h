// Reading JSON files we are given (train configs, config.json, adapter_config.json, data sections): typed reads
// whose one error names the file and the key path and says what was expected and what was found:
//   cfg.json: key "training.learning_rate" must be a number, got a string
//   cfg.json: unknown key "data.max_lenght" (did you mean "data.max_length"?)
//   config.json: missing key "hidden_size"
// It exposes simdjson's DOM types, so .cpp files include it (never a public header); the writer is json_writer.h.
#pragma once
#include <simdjson.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/error.h"

namespace qsft::json {

using simdjson::dom::element;

// What a value is, in words for an error: "an integer", "a fractional number", "a list", "null", ...
const char* type_name(element e);

// Typed reads of the values of one key ("lora.r"); each names the key when the value is of the wrong type or out
// of range. A list's items are read with the list's reader.
class Reader {
 public:
  Reader(std::string file, std::string key) : file_(std::move(file)), key_(std::move(key)) {}
  const std::string& key() const { return key_; }
  InputError error(const std::string& what) const;  // "file: key "k" what"
  [[noreturn]] void bad(const std::string& what) const { throw error(what); }

  double number(element e) const;                          // an integer or a fractional number
  int64_t integer(element e) const;                        // a whole number that fits int64
  int64_t count(element e, int64_t lo, int64_t hi) const;  // an integer in [lo, hi], checked before narrowing
  double positive(element e) const;                        // > 0
  double non_negative(element e) const;                    // >= 0
  double in_range(element e, double lo, double hi) const;  // lo <= x <= hi
  bool boolean(element e) const;
  std::string string(element e) const;
  std::string one_of(element e, const std::vector<std::string>& choices) const;
  std::vector<std::string> strings(element e) const;  // a list of strings
  simdjson::dom::array list(element e) const;
  simdjson::dom::object object(element e) const;

 private:
  [[noreturn]] void wrong_type(const char* expected, element got) const;
  std::string file_, key_;
};

// The keys of one object of a file whose keys we define (a train config): each key has a setter; a key without
// one is an error naming the nearest valid key.
class Section {
 public:
  Section(std::string file, std::string prefix) : file_(std::move(file)), prefix_(std::move(prefix)) {}
  using Setter = std::function<void(element)>;
  void key(const std::string& name, Setter set) { setters_.emplace(name, std::move(set)); }
  void parse(element obj) const;  // calls the setter of every key present, in file order
  Reader reader(const std::string& key) const { return Reader(file_, full(key)); }
  std::string full(const std::string& key) const { return prefix_.empty() ? key : prefix_ + "." + key; }
  const std::string& file() const { return file_; }

 private:
  std::string file_, prefix_;
  std::map<std::string, Setter> setters_;
};

// Lookups in an object of a file others write (config.json, adapter_config.json): keys we do not read are
// ignored, and an absent key or a null value means "the default", as transformers reads them.
class Object {
 public:
  Object(std::string file, simdjson::dom::object obj, std::string prefix = "")
      : file_(std::move(file)), obj_(obj), prefix_(std::move(prefix)) {}

  std::optional<element> get(std::string_view key) const;  // nullopt when absent or null
  element at(std::string_view key) const;                  // required: InputError "missing key" otherwise
  bool is_null(std::string_view key) const;                // present and null
  bool empty() const { return obj_.size() == 0; }
  Reader reader(std::string_view key) const { return Reader(file_, name(key)); }
  std::string name(std::string_view key) const { return prefix_ + std::string(key); }  // "rope_parameters.factor"
  InputError error(const std::string& what) const { return input_error(file_, what); }

  int64_t integer(std::string_view key) const;  // required
  double number(std::string_view key) const;    // required
  std::optional<int64_t> opt_integer(std::string_view key) const;
  double number(std::string_view key, double fallback) const;
  bool boolean(std::string_view key, bool fallback) const;
  std::string string(std::string_view key, const std::string& fallback) const;
  std::vector<std::string> strings(std::string_view key) const;  // a list of strings; empty when absent
  std::optional<Object> object(std::string_view key) const;

 private:
  std::string file_;
  simdjson::dom::object obj_;
  std::string prefix_;
};

// A parsed JSON text and the parser that owns its values (keep it alive while reading them).
class Document {
 public:
  Document(std::string file, std::string_view text);  // InputError "file: invalid JSON: ..." when it is not JSON
  Document(const Document&) = delete;                 // the values point into parser_
  Document& operator=(const Document&) = delete;
  element root() const { return root_; }
  Object object() const;  // the root, which must be an object
  const std::string& file() const { return file_; }

 private:
  std::string file_;
  simdjson::dom::parser parser_;
  element root_;
};

std::string read_text_file(const std::string& path);  // the bytes of a file; InputError when it cannot be read

}  // namespace qsft::json
