// Reading the fields of a parsed record (simdjson DOM) with errors that name the field and say what was expected
// and what was found. Internal to data/ (.cpp files only: simdjson).
#pragma once
#include <simdjson.h>

#include <optional>
#include <string>
#include <string_view>

#include "engine/base/error.h"

namespace qsft::json_fields {

namespace dom = simdjson::dom;

[[noreturn]] inline void bad_field(const std::string& field, const std::string& reason) {
  throw InputError(field + ": " + reason);
}

inline const char* type_name(dom::element v) {
  switch (v.type()) {
    case dom::element_type::ARRAY: return "a list";
    case dom::element_type::OBJECT: return "an object";
    case dom::element_type::STRING: return "a string";
    case dom::element_type::BOOL: return "a boolean";
    case dom::element_type::NULL_VALUE: return "null";
    default: return "a number";
  }
}

// The value of key, or nullopt when it is absent or null.
inline std::optional<dom::element> field(dom::element obj, std::string_view key) {
  dom::element v;
  if (obj.at_key(key).get(v) || v.is_null()) return std::nullopt;
  return v;
}

inline std::string_view as_string(dom::element v, const std::string& name) {
  std::string_view s;
  if (v.get_string().get(s)) bad_field(name, std::string("expected a string, got ") + type_name(v));
  return s;
}

inline dom::array as_list(dom::element v, const std::string& name) {
  dom::array a;
  if (v.get_array().get(a)) bad_field(name, std::string("expected a list, got ") + type_name(v));
  return a;
}

inline dom::object as_object(dom::element v, const std::string& name) {
  dom::object o;
  if (v.get_object().get(o)) bad_field(name, std::string("expected an object, got ") + type_name(v));
  return o;
}

inline dom::element required(dom::element obj, std::string_view key, const std::string& name) {
  auto v = field(obj, key);
  if (!v) bad_field(name, "missing");
  return *v;
}

inline std::string_view required_string(dom::element obj, std::string_view key, const std::string& name) {
  return as_string(required(obj, key, name), name);
}

inline std::string_view optional_string(dom::element obj, std::string_view key, const std::string& name) {
  auto v = field(obj, key);
  return v ? as_string(*v, name) : std::string_view();
}

}  // namespace qsft::json_fields
