#include "tokenizer/jinja_value.h"

#include <simdjson.h>
#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/base/json_text.h"
#include "tokenizer/utf8.h"

namespace qsft::jinja {

namespace {

using Kind = Value::Kind;

Value from_element(simdjson::dom::element e) {
  namespace dom = simdjson::dom;
  switch (e.type()) {
    case dom::element_type::OBJECT: {
      Dict d;
      for (auto [key, value] : dom::object(e)) d.emplace_back(Value::string(std::string(key)), from_element(value));
      return Value::dict(std::move(d));
    }
    case dom::element_type::ARRAY: {
      List l;
      for (dom::element item : dom::array(e)) l.push_back(from_element(item));
      return Value::list(std::move(l));
    }
    case dom::element_type::STRING: return Value::string(std::string(std::string_view(e)));
    case dom::element_type::INT64: return Value::integer(int64_t(e));
    case dom::element_type::UINT64: {
      Value v = Value::integer(0);
      v.kind = Kind::big_integer;
      v.s = std::to_string(uint64_t(e));
      return v;
    }
    case dom::element_type::DOUBLE: return Value::floating(double(e));
    case dom::element_type::BOOL: return Value::boolean(bool(e));
    case dom::element_type::NULL_VALUE: return Value::none();
  }
  return Value::none();
}

// Python's str.isprintable() for one code point (repr escapes the others).
bool printable(char32_t cp) {
  if (cp == ' ') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS: return false;
    default: return true;
  }
}

void append_string_repr(std::string& out, std::string_view s) {
  const char quote = s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos ? '"' : '\'';
  out += quote;
  for (size_t i = 0; i < s.size();) {
    size_t len;
    char32_t cp = utf8::decode(s, i, &len);
    if (cp == static_cast<char32_t>(quote) || cp == '\\') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (!printable(cp)) {
      char buf[16];
      const char* fmt = cp < 0x100 ? "\\x%02x" : cp < 0x10000 ? "\\u%04x" : "\\U%08x";
      std::snprintf(buf, sizeof buf, fmt, static_cast<unsigned>(cp));
      out += buf;
    } else {
      out.append(s, i, len);
    }
    i += len;
  }
  out += quote;
}

std::string json_key(const Value& k) {
  switch (k.kind) {
    case Kind::string: return k.s;
    case Kind::none: return "null";
    case Kind::boolean: return k.b ? "true" : "false";
    case Kind::integer:
    case Kind::big_integer:
    case Kind::floating: {
      std::string out;
      JsonStyle style;
      append_json(out, k, style);
      return out;
    }
    default: throw TemplateError("keys must be str, int, float, bool or None, not " + type_name(k));
  }
}

void newline_indent(std::string& out, const JsonStyle& style, int depth) {
  out += '\n';
  out.append(static_cast<size_t>(style.indent * depth), ' ');
}

}  // namespace

Value Value::from_json(std::string_view json, const std::string& where) {
  thread_local simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  simdjson::dom::element root;
  if (auto err = parser.parse(padded).get(root))
    throw InputError(where + ": not valid JSON: " + simdjson::error_message(err));
  return from_element(root);
}

bool Value::truthy() const {
  switch (kind) {
    case Kind::undefined:
    case Kind::none: return false;
    case Kind::boolean: return b;
    case Kind::integer: return i != 0;
    case Kind::big_integer: return true;
    case Kind::floating: return f != 0.0;
    case Kind::string: return !s.empty();
    case Kind::list: return !l->empty();
    case Kind::dict: return !d->empty();
    case Kind::generator:
    case Kind::function: return true;
  }
  return false;
}

double Value::as_double() const {
  if (kind == Kind::floating) return f;
  if (kind == Kind::boolean) return b;
  if (kind == Kind::big_integer) return std::strtod(s.c_str(), nullptr);
  return static_cast<double>(i);
}

const Value* Value::find(const Value& key) const {
  for (const auto& [k, v] : *d)
    if (equal(k, key)) return &v;
  return nullptr;
}

Value* Value::find(const Value& key) { return const_cast<Value*>(static_cast<const Value*>(this)->find(key)); }

const Value* Value::find(std::string_view key) const {
  for (const auto& [k, v] : *d)
    if (k.kind == Kind::string && k.s == key) return &v;
  return nullptr;
}

void Value::set(const Value& key, Value v) {
  if (Value* old = find(key))
    *old = std::move(v);
  else
    d->emplace_back(key, std::move(v));
}

const Value* CallArgs::get(size_t index, std::string_view name) const {
  for (const auto& [k, v] : kw)
    if (k == name) return &v;
  return index < pos.size() ? &pos[index] : nullptr;
}

bool equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::floating || b.kind == Kind::floating) return a.as_double() == b.as_double();
    return (a.kind == Kind::boolean ? a.b : a.i) == (b.kind == Kind::boolean ? b.b : b.i);
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::undefined:
    case Kind::none: return true;
    case Kind::big_integer:
    case Kind::string: return a.s == b.s;
    case Kind::list:
      if (a.is_tuple != b.is_tuple || a.l->size() != b.l->size()) return false;
      for (size_t k = 0; k < a.l->size(); ++k)
        if (!equal((*a.l)[k], (*b.l)[k])) return false;
      return true;
    case Kind::dict:
      if (a.d->size() != b.d->size()) return false;
      for (const auto& [k, v] : *a.d) {
        const Value* other = b.find(k);
        if (!other || !equal(v, *other)) return false;
      }
      return true;
    case Kind::generator: return a.l == b.l;  // an object equals only itself
    case Kind::function: return a.fn == b.fn;
    default: return false;
  }
}

bool less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_integer() && b.is_integer())
      return (a.kind == Kind::boolean ? a.b : a.i) < (b.kind == Kind::boolean ? b.b : b.i);
    return a.as_double() < b.as_double();
  }
  if (a.is_string() && b.is_string()) return a.s < b.s;  // UTF-8 byte order is code point order
  if (a.is_list() && b.is_list()) {
    const List &x = *a.l, &y = *b.l;
    for (size_t k = 0; k < x.size() && k < y.size(); ++k)
      if (!equal(x[k], y[k])) return less(x[k], y[k]);
    return x.size() < y.size();
  }
  throw TemplateError("'<' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) + "'");
}

std::string type_name(const Value& v) {
  switch (v.kind) {
    case Kind::undefined: return "Undefined";
    case Kind::none: return "NoneType";
    case Kind::boolean: return "bool";
    case Kind::integer:
    case Kind::big_integer: return "int";
    case Kind::floating: return "float";
    case Kind::string: return "str";
    case Kind::list: return v.is_tuple ? "tuple" : "list";
    case Kind::generator: return "generator";
    case Kind::dict: return v.is_namespace ? "Namespace" : "dict";
    case Kind::function: return "function";
  }
  return "object";
}

void append_str(std::string& out, const Value& v) {
  switch (v.kind) {
    case Kind::undefined: return;
    case Kind::string: out += v.s; return;
    default: append_repr(out, v);
  }
}

std::string str(const Value& v) {
  if (v.is_string()) return v.s;
  std::string out;
  append_str(out, v);
  return out;
}

void append_repr(std::string& out, const Value& v) {
  switch (v.kind) {
    case Kind::undefined: out += "Undefined"; return;
    case Kind::none: out += "None"; return;
    case Kind::boolean: out += v.b ? "True" : "False"; return;
    case Kind::integer: out += std::to_string(v.i); return;
    case Kind::big_integer: out += v.s; return;
    case Kind::floating:
      if (std::isnan(v.f))
        out += "nan";
      else if (std::isinf(v.f))
        out += v.f < 0 ? "-inf" : "inf";
      else
        append_python_float(out, v.f);
      return;
    case Kind::string:
      if (v.is_markup) out += "Markup(";
      append_string_repr(out, v.s);
      if (v.is_markup) out += ')';
      return;
    case Kind::list: {
      out += v.is_tuple ? '(' : '[';
      for (size_t k = 0; k < v.l->size(); ++k) {
        if (k) out += ", ";
        append_repr(out, (*v.l)[k]);
      }
      if (v.is_tuple && v.l->size() == 1) out += ',';
      out += v.is_tuple ? ')' : ']';
      return;
    }
    case Kind::dict: {
      out += v.is_namespace ? "<Namespace {" : "{";
      bool first = true;
      for (const auto& [k, x] : *v.d) {
        if (!first) out += ", ";
        first = false;
        append_repr(out, k);
        out += ": ";
        append_repr(out, x);
      }
      out += v.is_namespace ? "}>" : "}";
      return;
    }
    case Kind::generator: out += "<generator object>"; return;  // Python adds the function and an address
    case Kind::function: out += "<function>"; return;
  }
}

void append_json(std::string& out, const Value& v, const JsonStyle& style, int depth) {
  switch (v.kind) {
    case Kind::none: out += "null"; return;
    case Kind::boolean: out += v.b ? "true" : "false"; return;
    case Kind::integer:
    case Kind::big_integer: append_repr(out, v); return;
    case Kind::floating:
      if (std::isnan(v.f))
        out += "NaN";
      else if (std::isinf(v.f))
        out += v.f < 0 ? "-Infinity" : "Infinity";
      else
        append_python_float(out, v.f);
      return;
    case Kind::string: append_json_string(out, v.s); return;
    case Kind::list: {
      if (v.l->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t k = 0; k < v.l->size(); ++k) {
        if (k) out += style.item_sep;
        if (style.indent >= 0) newline_indent(out, style, depth + 1);
        append_json(out, (*v.l)[k], style, depth + 1);
      }
      if (style.indent >= 0) newline_indent(out, style, depth);
      out += ']';
      return;
    }
    case Kind::dict: {
      if (v.d->empty()) {
        out += "{}";
        return;
      }
      std::vector<std::pair<std::string, const Value*>> items;
      for (const auto& [k, x] : *v.d) items.emplace_back(json_key(k), &x);
      if (style.sort_keys)
        std::stable_sort(items.begin(), items.end(), [](auto& a, auto& b) { return a.first < b.first; });
      out += '{';
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += style.item_sep;
        if (style.indent >= 0) newline_indent(out, style, depth + 1);
        append_json_string(out, items[k].first);
        out += style.key_sep;
        append_json(out, *items[k].second, style, depth + 1);
      }
      if (style.indent >= 0) newline_indent(out, style, depth);
      out += '}';
      return;
    }
    default: throw TemplateError("Object of type " + type_name(v) + " is not JSON serializable");
  }
}

}  // namespace qsft::jinja
