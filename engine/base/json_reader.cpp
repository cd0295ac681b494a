#include "engine/base/json_reader.h"

#include <fstream>
#include <sstream>

#include "engine/base/nearest_key.h"

namespace qsft::json {

namespace {

std::string quoted(const std::string& key) { return "\"" + key + "\""; }

std::string listed(const std::vector<std::string>& items) {
  std::string list;
  for (const std::string& s : items) list += (list.empty() ? "" : ", ") + s;
  return list;
}

std::string number_text(double x) {
  std::ostringstream os;
  os << x;
  return os.str();
}

}  // namespace

const char* type_name(element e) {
  using T = simdjson::dom::element_type;
  switch (e.type()) {
    case T::ARRAY: return "a list";
    case T::OBJECT: return "an object";
    case T::INT64:
    case T::UINT64: return "an integer";
    case T::DOUBLE: return "a fractional number";
    case T::STRING: return "a string";
    case T::BOOL: return "a boolean";
    case T::NULL_VALUE: return "null";
  }
  return "?";
}

// ---- Reader ----

InputError Reader::error(const std::string& what) const {
  return input_error(file_, "key " + quoted(key_) + " " + what);
}

void Reader::wrong_type(const char* expected, element got) const {
  bad(std::string("must be ") + expected + ", got " + type_name(got));
}

double Reader::number(element e) const {
  if (e.is_int64()) return double(int64_t(e));
  if (e.is_uint64()) return double(uint64_t(e));
  double d;
  if (e.get_double().get(d)) wrong_type("a number", e);
  return d;
}

int64_t Reader::integer(element e) const {
  int64_t i;
  if (e.get_int64().get(i)) wrong_type("an integer", e);
  return i;
}

int64_t Reader::count(element e, int64_t lo, int64_t hi) const {
  const int64_t i = integer(e);
  if (i < lo) bad("must be >= " + std::to_string(lo) + ", got " + std::to_string(i));
  if (i > hi) bad("must be <= " + std::to_string(hi) + ", got " + std::to_string(i));
  return i;
}

double Reader::positive(element e) const {
  const double d = number(e);
  if (!(d > 0)) bad("must be > 0, got " + number_text(d));
  return d;
}

double Reader::non_negative(element e) const {
  const double d = number(e);
  if (!(d >= 0)) bad("must be >= 0, got " + number_text(d));
  return d;
}

double Reader::in_range(element e, double lo, double hi) const {
  const double d = number(e);
  if (!(d >= lo && d <= hi))
    bad("must be in [" + number_text(lo) + ", " + number_text(hi) + "], got " + number_text(d));
  return d;
}

bool Reader::boolean(element e) const {
  bool b;
  if (e.get_bool().get(b)) wrong_type("true or false", e);
  return b;
}

std::string Reader::string(element e) const {
  std::string_view v;
  if (e.get_string().get(v)) wrong_type("a string", e);
  return std::string(v);
}

std::string Reader::one_of(element e, const std::vector<std::string>& choices) const {
  const std::string v = string(e);
  for (const std::string& c : choices)
    if (c == v) return v;
  bad("is \"" + v + "\"; valid values: " + listed(choices));
}

std::vector<std::string> Reader::strings(element e) const {
  std::vector<std::string> out;
  simdjson::dom::array arr;
  if (e.get_array().get(arr)) wrong_type("a list of strings", e);
  for (element x : arr) {
    std::string_view s;
    if (x.get_string().get(s)) bad(std::string("must be a list of strings, holds ") + type_name(x));
    out.emplace_back(s);
  }
  return out;
}

simdjson::dom::array Reader::list(element e) const {
  simdjson::dom::array a;
  if (e.get_array().get(a)) wrong_type("a list", e);
  return a;
}

simdjson::dom::object Reader::object(element e) const {
  simdjson::dom::object o;
  if (e.get_object().get(o)) wrong_type("an object", e);
  return o;
}

// ---- Section ----

void Section::parse(element obj) const {
  if (!obj.is_object())
    throw input_error(file_, (prefix_.empty() ? std::string("the file") : "key " + quoted(prefix_)) +
                                 " must be an object, got " + type_name(obj));
  for (auto field : obj.get_object()) {
    const std::string k(field.key);
    auto it = setters_.find(k);
    if (it != setters_.end()) {
      it->second(field.value);
      continue;
    }
    std::vector<std::string> valid;
    for (const auto& [name, _] : setters_) valid.push_back(name);
    const std::string near = nearest_key(k, valid);
    throw input_error(file_, "unknown key " + quoted(full(k)) +
                                 (near.empty() ? " (valid keys: " + listed(valid) + ")"
                                               : " (did you mean " + quoted(full(near)) + "?)"));
  }
}

// ---- Object ----

std::optional<element> Object::get(std::string_view key) const {
  element e;
  if (obj_[key].get(e) || e.is_null()) return std::nullopt;
  return e;
}

bool Object::is_null(std::string_view key) const {
  element e;
  return !obj_[key].get(e) && e.is_null();
}

element Object::at(std::string_view key) const {
  auto e = get(key);
  if (!e) throw error("missing key " + quoted(name(key)));
  return *e;
}

int64_t Object::integer(std::string_view key) const { return reader(key).integer(at(key)); }

double Object::number(std::string_view key) const { return reader(key).number(at(key)); }

std::optional<int64_t> Object::opt_integer(std::string_view key) const {
  auto e = get(key);
  if (!e) return std::nullopt;
  return reader(key).integer(*e);
}

double Object::number(std::string_view key, double fallback) const {
  auto e = get(key);
  return e ? reader(key).number(*e) : fallback;
}

bool Object::boolean(std::string_view key, bool fallback) const {
  auto e = get(key);
  return e ? reader(key).boolean(*e) : fallback;
}

std::string Object::string(std::string_view key, const std::string& fallback) const {
  auto e = get(key);
  return e ? reader(key).string(*e) : fallback;
}

std::vector<std::string> Object::strings(std::string_view key) const {
  auto e = get(key);
  return e ? reader(key).strings(*e) : std::vector<std::string>{};
}

std::optional<Object> Object::object(std::string_view key) const {
  auto e = get(key);
  if (!e) return std::nullopt;
  return Object(file_, reader(key).object(*e), name(key) + ".");
}

// ---- Document ----

Document::Document(std::string file, std::string_view text) : file_(std::move(file)) {
  if (auto err = parser_.parse(simdjson::padded_string(text)).get(root_))
    throw input_error(file_, std::string("invalid JSON: ") + simdjson::error_message(err));
}

Object Document::object() const {
  simdjson::dom::object o;
  if (root_.get_object().get(o))
    throw input_error(file_, std::string("must be a JSON object, got ") + type_name(root_));
  return Object(file_, o);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(path, "cannot read the file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace qsft::json
