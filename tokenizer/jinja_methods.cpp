// Attribute and item access, Python methods, operators and global functions of the Jinja engine (declared in
// tokenizer/jinja_builtins.h).
#include <utf8proc.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>
#include <memory>
#include <utility>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/utf8.h"

namespace qsft::jinja {

namespace {

using Kind = Value::Kind;

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

// markupsafe's Markup methods, which give Markup (split, rsplit, splitlines and the partitions: Markup pieces).
bool markup_method(std::string_view m) {
  for (std::string_view x : {"capitalize", "title",      "lower",  "upper", "replace", "ljust",        "rjust",
                             "lstrip",     "rstrip",     "center", "strip", "zfill",   "removeprefix", "removesuffix",
                             "partition",  "rpartition", "format", "join",  "split",   "rsplit",       "splitlines"})
    if (m == x) return true;
  return false;
}

Value as_markup(Value v) {
  if (v.is_string()) v.is_markup = true;
  if (v.is_list())
    for (Value& x : *v.l) x = as_markup(std::move(x));
  return v;
}

// A Markup's method, escaping what markupsafe 3 escapes (every value format and join insert, replace's new text, the
// fill character of ljust/rjust/center); its str results are Markup.
bool call_markup_method(const Value& obj, std::string_view m, CallArgs& args, Value& result) {
  if (m == "format") {
    for (Value& v : args.pos) v = pystr::escape_arg(v, true);
    for (auto& [k, v] : args.kw) v = pystr::escape_arg(v, true);
  } else if (m == "join" && !args.pos.empty()) {
    List items;  // escape(x) of every item: a number becomes its text
    for (const Value& x : iterate(args.pos[0]))
      items.push_back(x.is_markup ? x : Value::markup(pystr::html_escape(str(x))));
    args.pos[0] = Value::list(std::move(items));
  } else if (m == "replace" || m == "ljust" || m == "rjust" || m == "center") {
    if (args.pos.size() > 1) args.pos[1] = pystr::escape_arg(args.pos[1], false);
  }
  if (!string_method(obj, m, args, result)) return false;
  result = as_markup(std::move(result));
  return true;
}

}  // namespace

bool call_method(const Value& obj, std::string_view name, CallArgs& args, Value& result) {
  if (obj.is_markup && markup_method(name)) return call_markup_method(obj, name, args, result);
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
  if (obj.is_group && (name == "grouper" || name == "list")) return (*obj.l)[name == "grouper" ? 0 : 1];
  const bool dict_only = name == "items" || name == "keys" || name == "values" || name == "get";
  if (obj.is_dict() && (keys || obj.is_namespace)) {
    if (const Value* v = obj.find(std::string_view(name))) {
      if (obj.is_namespace || !dict_only) return *v;
    }
  }
  if (obj.is_string() || obj.is_list() || (obj.is_dict() && !obj.is_namespace)) {
    CallArgs probe;
    Value unused;
    static const char* const kMethods[] = {
        "startswith", "endswith", "strip",     "lstrip",     "rstrip",       "split",        "rsplit",    "splitlines",
        "replace",    "upper",    "lower",     "title",      "capitalize",   "format",       "find",      "rfind",
        "index",      "count",    "join",      "isdigit",    "isspace",      "isalpha",      "isalnum",   "isupper",
        "islower",    "items",    "keys",      "values",     "get",          "rindex",       "ljust",     "rjust",
        "center",     "zfill",    "partition", "rpartition", "removeprefix", "removesuffix", "isdecimal", "isnumeric"};
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
    std::vector<size_t> at = pystr::code_point_offsets(obj.s);
    const int64_t n = static_cast<int64_t>(at.size()) - 1;
    if (k < 0) k += n;
    if (k < 0 || k >= n) return no_element(obj, key);
    Value c = Value::string(
        obj.s.substr(at[static_cast<size_t>(k)], at[static_cast<size_t>(k) + 1] - at[static_cast<size_t>(k)]));
    c.is_markup = obj.is_markup;  // a Markup's characters are Markup
    return c;
  }
  if (obj.is_dict())
    if (const Value* v = obj.find(key)) return *v;
  if (key.is_string()) return get_attr(obj, key.s);
  return no_element(obj, key);
}

Value get_slice(const Value& obj, const Value* start, const Value* stop, const Value* step) {
  if (obj.is_undefined()) undefined_error(obj);
  if (!obj.is_list() && !obj.is_string()) throw TemplateError("'" + type_name(obj) + "' object is not subscriptable");
  const int64_t st = pystr::int_arg(step, 1, "slice step");
  if (st == 0) throw TemplateError("slice step cannot be zero");
  std::vector<size_t> at;
  int64_t n;
  if (obj.is_string()) {
    at = pystr::code_point_offsets(obj.s);
    n = static_cast<int64_t>(at.size()) - 1;
  } else {
    n = static_cast<int64_t>(obj.l->size());
  }
  // Python's slice.indices.
  auto bound = [&](const Value* v, int64_t fallback) {
    if (!v || v->is_none()) return fallback;
    int64_t k = pystr::int_arg(v, 0, "slice index");
    if (k < 0) k += n;
    if (st > 0) return std::clamp<int64_t>(k, 0, n);
    return std::clamp<int64_t>(k, -1, n - 1);
  };
  const int64_t b = bound(start, st > 0 ? 0 : n - 1), e = bound(stop, st > 0 ? n : -1);
  if (obj.is_string() && st == 1) {
    Value part = Value::string(b < e ? obj.s.substr(at[b], at[e] - at[b]) : "");
    part.is_markup = obj.is_markup;  // a Markup's slices are Markup
    return part;
  }
  List items;
  std::string text;
  for (int64_t k = b; st > 0 ? k < e : k > e; k += st) {
    if (obj.is_list())
      items.push_back((*obj.l)[static_cast<size_t>(k)]);
    else
      text.append(obj.s, at[k], at[k + 1] - at[k]);
  }
  if (obj.is_list()) return Value::list(std::move(items), obj.is_tuple);
  Value part = Value::string(std::move(text));
  part.is_markup = obj.is_markup;
  return part;
}

List iterate(const Value& v) {
  switch (v.kind) {
    case Kind::undefined: return {};
    case Kind::list: return *v.l;
    case Kind::generator: {  // used up, as a Python generator is: the items go, every holder sees it empty
      List items = std::move(*v.l);
      v.l->clear();
      return items;
    }
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
      for (const Value& x : *haystack.l)
        if (equal(x, needle)) return true;
      return false;
    case Kind::generator: {  // consumed up to the match (all of it when there is none)
      List& items = *haystack.l;
      const auto hit = std::find_if(items.begin(), items.end(), [&](const Value& x) { return equal(x, needle); });
      const bool found = hit != items.end();
      items.erase(items.begin(), found ? hit + 1 : hit);
      return found;
    }
    case Kind::dict: return haystack.find(needle) != nullptr;
    default: throw TemplateError("argument of type '" + type_name(haystack) + "' is not iterable");
  }
}

Value global(const std::string& name) {
  if (name == "range") {
    return Value::function([](CallArgs& a) {
      int64_t start = 0, stop, step = 1;
      if (a.pos.size() == 1)
        stop = pystr::int_arg(&a.pos[0], 0, "range");
      else if (a.pos.size() >= 2)
        start = pystr::int_arg(&a.pos[0], 0, "range"), stop = pystr::int_arg(&a.pos[1], 0, "range");
      else
        throw TemplateError("range expected at least 1 argument");
      if (a.pos.size() == 3) step = pystr::int_arg(&a.pos[2], 1, "range");
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
  if (name == "joiner") {  // joiner(sep=", ")(): "" the first time, sep after
    return Value::function([](CallArgs& a) {
      const Value* sep = a.get(0, "sep");
      auto used = std::make_shared<bool>(false);
      const std::string text = sep ? str(*sep) : ", ";
      return Value::function([used, text](CallArgs&) { return Value::string(std::exchange(*used, true) ? text : ""); });
    });
  }
  if (name == "cycler") {  // cycler(items...): .next() gives current and moves on; .current; .reset()
    return Value::function([](CallArgs& a) {
      if (a.pos.empty()) throw TemplateError("at least one item has to be provided");
      Value c = Value::dict();
      auto state = std::make_shared<std::pair<List, size_t>>(a.pos, 0);
      const std::weak_ptr<Dict> self = c.d;  // the functions update "current"; weak: no cycle
      auto set_current = [state, self] {
        if (auto d = self.lock())
          for (auto& [key, value] : *d)
            if (key.is_string() && key.s == "current") value = state->first[state->second];
      };
      c.set(Value::string("current"), state->first[0]);
      c.set(Value::string("next"), Value::function([state, set_current](CallArgs&) {
              Value r = state->first[state->second];
              state->second = (state->second + 1) % state->first.size();
              set_current();
              return r;
            }));
      c.set(Value::string("reset"), Value::function([state, set_current](CallArgs&) {
              state->second = 0;
              set_current();
              return Value::none();
            }));
      return c;
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
      size_t n = std::strftime(buf, sizeof buf, pystr::str_arg(a, 0, "format").c_str(), &local);
      return Value::string(std::string(buf, n));
    });
  }
  return undefined_name(name);
}

}  // namespace qsft::jinja
