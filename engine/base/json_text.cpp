#include "engine/base/json_text.h"

#include <simdjson.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>

#include "engine/base/error.h"

namespace qsft {

namespace dom = simdjson::dom;

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

// Python's repr of a float: the shortest digits that round-trip, in positional notation when the decimal
// exponent is in [-4, 16), else as d.ddde+XX; integral values keep a ".0".
template <class F>
static void append_python_repr(std::string& out, F x) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));
  bool negative = sci.front() == '-';
  if (negative) sci.remove_prefix(1);
  size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e))
    if (c != '.') digits += c;
  int exp10 = std::atoi(std::string(sci.substr(e + 1)).c_str());
  if (negative) out += '-';
  if (exp10 >= -4 && exp10 < 16) {
    const int point = exp10 + 1;  // digits before the decimal point
    const auto n = static_cast<int>(digits.size());
    if (point <= 0) {
      out += "0.";
      out.append(static_cast<size_t>(-point), '0');
      out += digits;
    } else if (point >= n) {
      out += digits;
      out.append(static_cast<size_t>(point - n), '0');
      out += ".0";
    } else {
      out.append(digits, 0, static_cast<size_t>(point));
      out += '.';
      out.append(digits, static_cast<size_t>(point));
    }
  } else {
    out += digits[0];
    if (digits.size() > 1) {
      out += '.';
      out.append(digits, 1);
    }
    char exponent[16];
    std::snprintf(exponent, sizeof exponent, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    out += exponent;
  }
}

void append_python_float(std::string& out, double x) { append_python_repr(out, x); }
void append_python_float(std::string& out, float x) { append_python_repr(out, x); }

static void append_python_json(std::string& out, dom::element v) {
  switch (v.type()) {
    case dom::element_type::OBJECT: {
      out += '{';
      bool first = true;
      for (auto [key, value] : dom::object(v)) {
        if (!first) out += ", ";
        first = false;
        append_json_string(out, key);
        out += ": ";
        append_python_json(out, value);
      }
      out += '}';
      break;
    }
    case dom::element_type::ARRAY: {
      out += '[';
      bool first = true;
      for (dom::element item : dom::array(v)) {
        if (!first) out += ", ";
        first = false;
        append_python_json(out, item);
      }
      out += ']';
      break;
    }
    case dom::element_type::STRING: append_json_string(out, std::string_view(v)); break;
    case dom::element_type::INT64: out += std::to_string(int64_t(v)); break;
    case dom::element_type::UINT64: out += std::to_string(uint64_t(v)); break;
    case dom::element_type::DOUBLE: append_python_float(out, double(v)); break;
    case dom::element_type::BOOL: out += bool(v) ? "true" : "false"; break;
    case dom::element_type::NULL_VALUE: out += "null"; break;
  }
}

std::string python_json(std::string_view json, const std::string& where) {
  thread_local dom::parser parser;
  dom::element root;
  simdjson::padded_string padded(json);
  if (auto err = parser.parse(padded).get(root)) throw InputError(where + ": not valid JSON: " + error_message(err));
  std::string out;
  append_python_json(out, root);
  return out;
}

}  // namespace qsft
