// Attribute and item access, Python methods, operators and global functions of the Jinja engine (declared in
// tokenizer/jinja_builtins.h).
#include <utf8proc.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/utf8.h"

namespace qsft::jinja {

namespace {

using Kind = Value::Kind;

int64_t to_int(const Value* v, int64_t fallback, const char* what) {
  if (!v || v->is_none()) return fallback;
  if (!v->is_integer()) throw TemplateError(std::string(what) + " must be an integer, not " + type_name(*v));
  return v->kind == Kind::boolean ? v->b : v->i;
}

const std::string& str_arg(const CallArgs& args, size_t index, const char* name) {
  const Value* v = args.get(index, name);
  if (!v || !v->is_string())
    throw TemplateError(std::string("argument '") + name + "' must be str, not " + (v ? type_name(*v) : "missing"));
  return v->s;
}

// The code points of s as byte offsets (offsets[k] = start of code point k; offsets.back() = s.size()).
std::vector<size_t> code_point_offsets(std::string_view s) {
  std::vector<size_t> offsets;
  for (size_t i = 0, len; i < s.size(); i += len) {
    offsets.push_back(i);
    utf8::decode(s, i, &len);
  }
  offsets.push_back(s.size());
  return offsets;
}

bool affix_matches(const Value& s, const Value& affix, bool prefix) {
  auto one = [&](const std::string& a) {
    if (a.size() > s.s.size()) return false;
    return prefix ? s.s.compare(0, a.size(), a) == 0 : s.s.compare(s.s.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.is_string()) return one(affix.s);
  if (affix.is_list() && affix.is_tuple) {
    for (const Value& a : *affix.l)
      if (a.is_string() && one(a.s)) return true;
    return false;
  }
  throw TemplateError(std::string(prefix ? "startswith" : "endswith") +
                      " first arg must be str or a tuple of str, not " + type_name(affix));
}

bool string_method(const Value& obj, std::string_view m, CallArgs& a, Value& r) {
  const std::string& s = obj.s;
  if (m == "startswith" || m == "endswith") {
    const Value* affix = a.get(0, "prefix");
    if (!affix) throw TemplateError(std::string(m) + " takes at least 1 argument");
    const Value* start = a.get(1, "start");
    const Value* end = a.get(2, "end");  // s.startswith(p, start, end) tests s[start:end]
    r = Value::boolean(affix_matches(start || end ? get_slice(obj, start, end, nullptr) : obj, *affix, m == "startswith"));
  } else if (m == "strip" || m == "lstrip" || m == "rstrip") {
    r = Value::string(pystr::strip(s, a.get(0, "chars"), m != "rstrip", m != "lstrip"));
  } else if (m == "split" || m == "rsplit") {
    const Value* sep = a.get(0, "sep");
    int64_t maxsplit = to_int(a.get(1, "maxsplit"), -1, "maxsplit");
    r = Value::list(m == "split" ? pystr::split(s, sep, maxsplit) : pystr::rsplit(s, sep, maxsplit));
  } else if (m == "splitlines") {
    List lines;  // Python's line boundaries: \n \r \r\n \v \f \x1c-\x1e \x85 U+2028 U+2029
    const Value* keep = a.get(0, "keepends");
    const bool keepends = keep && keep->truthy();
    size_t start = 0;
    for (size_t i = 0, len; i < s.size(); i += len) {
      char32_t c = utf8::decode(s, i, &len);
      if (!(c == '\n' || c == '\r' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1e) || c == 0x85 || c == 0x2028 ||
            c == 0x2029))
        continue;
      if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++len;
      lines.push_back(Value::string(s.substr(start, (keepends ? i + len : i) - start)));
      start = i + len;
    }
    if (start < s.size()) lines.push_back(Value::string(s.substr(start)));
    r = Value::list(std::move(lines));
  } else if (m == "replace") {
    r = Value::string(
        pystr::replace(s, str_arg(a, 0, "old"), str_arg(a, 1, "new"), to_int(a.get(2, "count"), -1, "count")));
  } else if (m == "upper") {
    r = Value::string(pystr::upper(s));
  } else if (m == "lower") {
    r = Value::string(pystr::lower(s));
  } else if (m == "title") {
    r = Value::string(pystr::title(s));
  } else if (m == "capitalize") {
    r = Value::string(pystr::capitalize(s));
  } else if (m == "format") {
    r = Value::string(pystr::format(s, a));
  } else if (m == "find" || m == "rfind" || m == "index" || m == "count") {
    const std::string& sub = str_arg(a, 0, "sub");
    if (m == "count") {
      int64_t n = 0;
      if (sub.empty())
        n = pystr::code_points(s) + 1;
      else
        for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      r = Value::integer(n);
      return true;
    }
    size_t p = m == "rfind" ? s.rfind(sub) : s.find(sub);
    if (p == std::string::npos && m == "index") throw TemplateError("substring not found");
    r = Value::integer(p == std::string::npos ? -1 : pystr::code_points(std::string_view(s).substr(0, p)));
  } else if (m == "join") {
    const Value* items = a.get(0, "iterable");
    if (!items) throw TemplateError("join takes exactly one argument");
    std::string out;
    bool first = true;
    for (const Value& v : iterate(*items)) {
      if (!v.is_string()) throw TemplateError("sequence item: expected str instance, " + type_name(v) + " found");
      if (!first) out += s;
      first = false;
      out += v.s;
    }
    r = Value::string(std::move(out));
  } else if (m == "isupper" || m == "islower") {
    r = Value::boolean(m == "isupper" ? pystr::is_upper(s) : pystr::is_lower(s));
  } else if (m == "isdigit" || m == "isspace" || m == "isalpha" || m == "isalnum") {
    bool ok = !s.empty();
    for (size_t i = 0, len; ok && i < s.size(); i += len) {
      char32_t c = utf8::decode(s, i, &len);
      if (m == "isdigit")
        ok = utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_ND;
      else if (m == "isspace")
        ok = pystr::is_space(c);
      else if (m == "isalpha")
        ok = pystr::is_alpha(c);
      else
        ok = pystr::is_alnum(c);
    }
    r = Value::boolean(ok);
  } else {
    return false;
  }
  return true;
}

bool dict_method(const Value& obj, std::string_view m, CallArgs& a, Value& r) {
  if (m == "items" || m == "keys" || m == "values") {
    List out;
    for (const auto& [k, v] : *obj.d) {
      if (m == "items")
        out.push_back(Value::list({k, v}, true));
      else
        out.push_back(m == "keys" ? k : v);
    }
    r = Value::list(std::move(out));
  } else if (m == "get") {
    const Value* key = a.get(0, "key");
    if (!key) throw TemplateError("get expected at least 1 argument");
    const Value* v = obj.find(*key);
    const Value* fallback = a.get(1, "default");
    r = v ? *v : fallback ? *fallback : Value::none();
  } else {
    return false;
  }
  return true;
}

bool is_mutating(std::string_view m) {
  for (std::string_view x :
       {"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse", "update", "setdefault", "popitem"})
    if (m == x) return true;
  return false;
}

}  // namespace

[[noreturn]] void undefined_error(const Value& v) { throw TemplateError(v.s); }

Value undefined_name(const std::string& name) { return Value::undefined("'" + name + "' is undefined"); }

namespace {

// jinja2's object_type_repr: "dict object", "None".
std::string object_type(const Value& obj) { return obj.is_none() ? "None" : type_name(obj) + " object"; }

Value no_attribute(const Value& obj, const std::string& name) {
  std::string why = "'";  // appended, not "+"-joined: GCC 12 warns falsely (-Wrestrict) on the joined form
  why += object_type(obj);
  why += "' has no attribute '";
  why += name;
  why += "'";
  return Value::undefined(std::move(why));
}

Value no_element(const Value& obj, const Value& key) {
  std::string k;
  append_repr(k, key);
  return Value::undefined(object_type(obj) + " has no element " + k);
}

}  // namespace

bool call_method(const Value& obj, std::string_view name, CallArgs& args, Value& result) {
  if (obj.is_string()) return string_method(obj, name, args, result);
  if ((obj.is_dict() || obj.is_list()) && is_mutating(name))
    throw TemplateError("cannot call " + std::string(name) + "() on a " + type_name(obj) +
                        ": chat templates render in transformers' immutable sandbox");
  if (obj.is_dict() && !obj.is_namespace) return dict_method(obj, name, args, result);
  if (obj.is_list() && (name == "index" || name == "count")) {
    const Value* x = args.get(0, "value");
    if (!x) throw TemplateError(std::string(name) + " takes exactly one argument");
    int64_t n = 0;
    for (size_t k = 0; k < obj.l->size(); ++k) {
      if (!equal((*obj.l)[k], *x)) continue;
      if (name == "index") {
        result = Value::integer(static_cast<int64_t>(k));
        return true;
      }
      ++n;
    }
    if (name == "index") throw TemplateError("value is not in list");
    result = Value::integer(n);
    return true;
  }
  return false;
}

Value get_attr(const Value& obj, const std::string& name, bool keys) {
  if (obj.is_undefined()) undefined_error(obj);
  const bool dict_only = name == "items" || name == "keys" || name == "values" || name == "get";
  if (obj.is_dict() && (keys || obj.is_namespace)) {
    if (const Value* v = obj.find(std::string_view(name))) {
      if (obj.is_namespace || !dict_only) return *v;
    }
  }
  if (obj.is_string() || obj.is_list() || (obj.is_dict() && !obj.is_namespace)) {
    CallArgs probe;
    Value unused;
    static const char* const kMethods[] = {"startswith", "endswith",   "strip",   "lstrip",  "rstrip",  "split",
                                           "rsplit",     "splitlines", "replace", "upper",   "lower",   "title",
                                           "capitalize", "format",     "find",    "rfind",   "index",   "count",
                                           "join",       "isdigit",    "isspace", "isalpha", "isalnum", "isupper",
                                           "islower",    "items",      "keys",    "values",  "get"};
    for (const char* m : kMethods) {
      if (name != m) continue;
      if (obj.is_dict() != dict_only) break;  // a str has no items(), a dict no split()
      if (obj.is_list() && !(name == "index" || name == "count")) break;
      Value self = obj;
      return Value::function([self, name](CallArgs& args) {
        Value r;
        call_method(self, name, args, r);
        return r;
      });
    }
  }
  return no_attribute(obj, name);
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) undefined_error(obj);
  if ((obj.is_list() || obj.is_string()) && key.is_integer()) {
    int64_t k = key.kind == Kind::boolean ? key.b : key.i;
    if (obj.is_list()) {
      const int64_t n = static_cast<int64_t>(obj.l->size());
      if (k < 0) k += n;
      return k >= 0 && k < n ? (*obj.l)[static_cast<size_t>(k)] : no_element(obj, key);
    }
    std::vector<size_t> at = code_point_offsets(obj.s);
    const int64_t n = static_cast<int64_t>(at.size()) - 1;
    if (k < 0) k += n;
    if (k < 0 || k >= n) return no_element(obj, key);
    return Value::string(
        obj.s.substr(at[static_cast<size_t>(k)], at[static_cast<size_t>(k) + 1] - at[static_cast<size_t>(k)]));
  }
  if (obj.is_dict())
    if (const Value* v = obj.find(key)) return *v;
  if (key.is_string()) return get_attr(obj, key.s);
  return no_element(obj, key);
}

Value get_slice(const Value& obj, const Value* start, const Value* stop, const Value* step) {
  if (obj.is_undefined()) undefined_error(obj);
  if (!obj.is_list() && !obj.is_string()) throw TemplateError("'" + type_name(obj) + "' object is not subscriptable");
  const int64_t st = to_int(step, 1, "slice step");
  if (st == 0) throw TemplateError("slice step cannot be zero");
  std::vector<size_t> at;
  int64_t n;
  if (obj.is_string()) {
    at = code_point_offsets(obj.s);
    n = static_cast<int64_t>(at.size()) - 1;
  } else {
    n = static_cast<int64_t>(obj.l->size());
  }
  // Python's slice.indices.
  auto bound = [&](const Value* v, int64_t fallback) {
    if (!v || v->is_none()) return fallback;
    int64_t k = to_int(v, 0, "slice index");
    if (k < 0) k += n;
    if (st > 0) return std::clamp<int64_t>(k, 0, n);
    return std::clamp<int64_t>(k, -1, n - 1);
  };
  const int64_t b = bound(start, st > 0 ? 0 : n - 1), e = bound(stop, st > 0 ? n : -1);
  if (obj.is_string() && st == 1) return Value::string(b < e ? obj.s.substr(at[b], at[e] - at[b]) : "");
  List items;
  std::string text;
  for (int64_t k = b; st > 0 ? k < e : k > e; k += st) {
    if (obj.is_list())
      items.push_back((*obj.l)[static_cast<size_t>(k)]);
    else
      text.append(obj.s, at[k], at[k + 1] - at[k]);
  }
  return obj.is_list() ? Value::list(std::move(items), obj.is_tuple) : Value::string(std::move(text));
}

List iterate(const Value& v) {
  switch (v.kind) {
    case Kind::undefined: return {};
    case Kind::list:
    case Kind::generator: return *v.l;
    case Kind::dict: {
      List keys;
      for (const auto& [k, x] : *v.d) keys.push_back(k);
      return keys;
    }
    case Kind::string: {
      List chars;
      for (size_t i = 0, len; i < v.s.size(); i += len) {
        utf8::decode(v.s, i, &len);
        chars.push_back(Value::string(v.s.substr(i, len)));
      }
      return chars;
    }
    default: throw TemplateError("'" + type_name(v) + "' object is not iterable");
  }
}

int64_t length(const Value& v) {
  switch (v.kind) {
    case Kind::undefined: return 0;
    case Kind::string: return pystr::code_points(v.s);
    case Kind::list: return static_cast<int64_t>(v.l->size());
    case Kind::dict: return static_cast<int64_t>(v.d->size());
    default: throw TemplateError("object of type '" + type_name(v) + "' has no len()");
  }
}

bool contains(const Value& haystack, const Value& needle) {
  switch (haystack.kind) {
    case Kind::undefined: return false;
    case Kind::string:
      if (!needle.is_string())
        throw TemplateError("'in <string>' requires string as left operand, not " + type_name(needle));
      return haystack.s.find(needle.s) != std::string::npos;
    case Kind::list:
    case Kind::generator:
      for (const Value& x : *haystack.l)
        if (equal(x, needle)) return true;
      return false;
    case Kind::dict: return haystack.find(needle) != nullptr;
    default: throw TemplateError("argument of type '" + type_name(haystack) + "' is not iterable");
  }
}

Value global(const std::string& name) {
  if (name == "range") {
    return Value::function([](CallArgs& a) {
      int64_t start = 0, stop, step = 1;
      if (a.pos.size() == 1)
        stop = to_int(&a.pos[0], 0, "range");
      else if (a.pos.size() >= 2)
        start = to_int(&a.pos[0], 0, "range"), stop = to_int(&a.pos[1], 0, "range");
      else
        throw TemplateError("range expected at least 1 argument");
      if (a.pos.size() == 3) step = to_int(&a.pos[2], 1, "range");
      if (step == 0) throw TemplateError("range() arg 3 must not be zero");
      List out;
      for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) out.push_back(Value::integer(k));
      if (out.size() > 100000) throw TemplateError("range too big");
      return Value::list(std::move(out));
    });
  }
  if (name == "namespace" || name == "dict") {
    const bool ns = name == "namespace";
    return Value::function([ns](CallArgs& a) {
      Value d = Value::dict();
      d.is_namespace = ns;
      for (const Value& p : a.pos)
        for (const auto& [k, v] : *(p.is_dict() ? p.d : throw TemplateError("namespace/dict takes a dict")))
          d.set(k, v);
      for (auto& [k, v] : a.kw) d.set(Value::string(k), v);
      return d;
    });
  }
  if (name == "raise_exception") {
    return Value::function([](CallArgs& a) -> Value {
      throw TemplateError(a.pos.empty() ? std::string("raise_exception") : str(a.pos[0]));
    });
  }
  if (name == "strftime_now") {
    return Value::function([](CallArgs& a) {
      std::time_t now = std::time(nullptr);
      std::tm local{};
      localtime_r(&now, &local);
      char buf[256];
      size_t n = std::strftime(buf, sizeof buf, str_arg(a, 0, "format").c_str(), &local);
      return Value::string(std::string(buf, n));
    });
  }
  return undefined_name(name);
}

}  // namespace qsft::jinja
