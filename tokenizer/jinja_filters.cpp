// The filters of the Jinja engine (`x | name(args)`), as jinja2 defines them, with transformers' tojson
// (json.dumps with ensure_ascii=False, indent, separators and sort_keys). Declared in tokenizer/jinja_builtins.h.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <utility>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/utf8.h"

namespace qsft::jinja {

// jinja2's attribute getter: "a.b.0" looked up part by part with getitem.
Value attribute_of(const Value& item, const std::string& path) {
  Value v = item;
  for (size_t start = 0; start <= path.size();) {
    size_t dot = path.find('.', start);
    if (dot == std::string::npos) dot = path.size();
    std::string part = path.substr(start, dot - start);
    const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    v = get_item(v, digits ? Value::integer(std::stoll(part)) : Value::string(part));
    start = dot + 1;
  }
  return v;
}

Value sort_key(const Value& v, bool case_sensitive) {
  return v.is_string() && !case_sensitive ? Value::string(pystr::lower(v.s)) : v;
}

namespace {

using Kind = Value::Kind;

bool flag(const CallArgs& a, size_t index, std::string_view name) {
  const Value* v = a.get(index, name);
  return v && v->truthy();
}

const std::string* attribute_arg(const CallArgs& a) {
  for (const auto& [k, v] : a.kw)
    if (k == "attribute") {
      if (!v.is_string()) throw TemplateError("attribute must be a string");
      return &v.s;
    }
  return nullptr;
}

// The rest of the arguments from index on, as the call of another filter or test.
CallArgs rest(const CallArgs& a, size_t from) {
  CallArgs r;
  if (a.pos.size() > from) r.pos.assign(a.pos.begin() + static_cast<ptrdiff_t>(from), a.pos.end());
  r.kw = a.kw;
  return r;
}

Value tojson(const Value& x, const CallArgs& a) {
  JsonStyle style;
  if (const Value* indent = a.get(1, "indent"); indent && !indent->is_none()) {
    if (!indent->is_integer()) throw TemplateError("tojson: indent must be an integer");
    style.indent = static_cast<int>(std::max<int64_t>(0, indent->i));
    style.item_sep = ",";
  }
  if (const Value* sep = a.get(2, "separators"); sep && !sep->is_none()) {
    if (!sep->is_list() || sep->l->size() != 2 || !(*sep->l)[0].is_string() || !(*sep->l)[1].is_string())
      throw TemplateError("tojson: separators must be a pair of strings");
    style.item_sep = (*sep->l)[0].s;
    style.key_sep = (*sep->l)[1].s;
  }
  style.sort_keys = flag(a, 3, "sort_keys");
  std::string out;
  append_json(out, x, style);
  if (!flag(a, 0, "ensure_ascii")) return Value::string(std::move(out));
  // What Python escapes beyond ensure_ascii=False (only inside JSON strings: DEL and non-ASCII): \uXXXX, surrogate
  // pairs above U+FFFF.
  std::string ascii;
  for (size_t i = 0, len; i < out.size(); i += len) {
    char32_t c = utf8::decode(out, i, &len);
    char buf[16];
    if (c < 0x7F)
      ascii += static_cast<char>(c);
    else if (c < 0x10000)
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c)), ascii += buf;
    else {
      c -= 0x10000;
      std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + static_cast<unsigned>(c >> 10),
                    0xDC00 + static_cast<unsigned>(c & 0x3FF));
      ascii += buf;
    }
  }
  return Value::string(std::move(ascii));
}

Value indent(const Value& x, const CallArgs& a) {
  std::string pad(4, ' ');
  if (const Value* w = a.get(0, "width"))
    pad = w->is_string() ? w->s : std::string(static_cast<size_t>(std::max<int64_t>(0, w->i)), ' ');
  const bool first = flag(a, 1, "first"), blank = flag(a, 2, "blank");
  CallArgs none;
  Value text = Value::string(str(x) + "\n");  // jinja2 appends "\n" before splitlines
  Value lines;
  call_method(text, "splitlines", none, lines);
  std::string out;
  for (size_t k = 0; k < lines.l->size(); ++k) {
    const std::string& line = (*lines.l)[k].s;
    if (k) out += '\n';
    if (k && (blank || !line.empty())) out += pad;
    out += line;
  }
  return Value::string(first ? pad + out : out);
}

Value sort(const Value& x, const CallArgs& a) {
  List items = iterate(x);
  const bool reverse = flag(a, 0, "reverse"), cs = flag(a, 1, "case_sensitive");
  const std::string* attr = attribute_arg(a);
  auto key = [&](const Value& v) { return sort_key(attr ? attribute_of(v, *attr) : v, cs); };
  std::stable_sort(items.begin(), items.end(), [&](const Value& p, const Value& q) {
    return reverse ? less(key(q), key(p)) : less(key(p), key(q));
  });
  return Value::list(std::move(items));
}

Value dictsort(const Value& x, const CallArgs& a) {
  if (!x.is_dict()) throw TemplateError("dictsort: expected a dict, got " + type_name(x));
  const bool cs = flag(a, 0, "case_sensitive"), reverse = flag(a, 2, "reverse");
  const Value* by = a.get(1, "by");
  const size_t pos = by && by->is_string() && by->s == "value" ? 1 : 0;
  List items;
  for (const auto& [k, v] : *x.d) items.push_back(Value::list({k, v}, true));
  std::stable_sort(items.begin(), items.end(), [&](const Value& p, const Value& q) {
    Value kp = sort_key((*p.l)[pos], cs), kq = sort_key((*q.l)[pos], cs);
    return reverse ? less(kq, kp) : less(kp, kq);
  });
  return Value::list(std::move(items));
}

// select/reject/selectattr/rejectattr: a generator; of a false input (undefined, None, empty) an empty one without
// looking at the arguments, as jinja2's `if value:` does.
Value select(const Value& x, const CallArgs& a, bool by_attribute, bool keep) {
  List out;
  if (!x.truthy()) return Value::generator();
  const size_t test_at = by_attribute ? 1 : 0;
  if (by_attribute && (a.pos.empty() || !a.pos[0].is_string()))
    throw TemplateError("selectattr needs an attribute name");
  for (const Value& item : iterate(x)) {
    Value v = by_attribute ? attribute_of(item, a.pos[0].s) : item;
    bool ok;
    if (a.pos.size() > test_at) {
      if (!a.pos[test_at].is_string()) throw TemplateError("the test name must be a string");
      CallArgs targs = rest(a, test_at + 1);
      ok = call_test(a.pos[test_at].s, v, targs);
    } else {
      ok = v.truthy();
    }
    if (ok == keep) out.push_back(item);
  }
  return Value::generator(std::move(out));
}

// A generator, empty for a false input (as select).
Value map(const Value& x, CallArgs& a) {
  List out;
  if (!x.truthy()) return Value::generator();
  const std::string* attr = attribute_arg(a);
  const Value* fallback = nullptr;
  for (const auto& [k, v] : a.kw)
    if (k == "default") fallback = &v;
  for (const Value& item : iterate(x)) {
    if (attr) {
      Value v = attribute_of(item, *attr);
      out.push_back(v.is_undefined() && fallback ? *fallback : v);
    } else {
      if (a.pos.empty() || !a.pos[0].is_string()) throw TemplateError("map needs a filter name or attribute=");
      CallArgs fargs = rest(a, 1);
      out.push_back(call_filter(a.pos[0].s, item, fargs));
    }
  }
  return Value::generator(std::move(out));
}

// Python's float(s) of a stripped string: strtod's hexadecimal forms ("0x1A", "0x1p3") are not Python literals.
bool parse_float(const std::string& s, double& f) {
  if (s.empty() || s.find_first_of("xX") != std::string::npos) return false;
  char* end = nullptr;
  f = std::strtod(s.c_str(), &end);
  return *end == '\0';
}

// jinja2's int filter: int(s, base) of a string, else its float truncated, else the default.
Value to_int(const Value& x, const CallArgs& a) {
  const Value* fallback = a.get(0, "default");
  const Value* base_arg = a.get(1, "base");
  const int64_t base = base_arg && base_arg->is_integer() ? base_arg->i : 10;
  if (x.is_integer() || x.kind == Kind::big_integer) return x.kind == Kind::boolean ? Value::integer(x.b) : x;
  if (x.kind == Kind::floating) return Value::integer(static_cast<int64_t>(x.f));
  if (x.is_string()) {
    std::string s = pystr::strip(x.s, nullptr, true, true);
    char* end = nullptr;
    if (base >= 2 && base <= 36) {  // strtoll takes a "0x" prefix in base 16 as Python does; "0b", "0o" skipped here
      const char p = s.size() > 2 && s[0] == '0' ? static_cast<char>(std::tolower(static_cast<unsigned char>(s[1]))) : 0;
      const bool prefix = (base == 2 && p == 'b') || (base == 8 && p == 'o');
      long long i = std::strtoll(s.c_str() + (prefix ? 2 : 0), &end, static_cast<int>(base));
      if (!s.empty() && *end == '\0') return Value::integer(i);
    }
    double f;
    if (parse_float(s, f) && std::isfinite(f)) return Value::integer(static_cast<int64_t>(f));
  }
  return fallback ? *fallback : Value::integer(0);
}

Value to_float(const Value& x, const CallArgs& a) {
  const Value* fallback = a.get(0, "default");
  if (x.is_number()) return Value::floating(x.as_double());
  double f;
  if (x.is_string() && parse_float(pystr::strip(x.s, nullptr, true, true), f)) return Value::floating(f);
  return fallback ? *fallback : Value::floating(0.0);
}

Value round(const Value& x, const CallArgs& a) {
  if (!x.is_number()) throw TemplateError("round: expected a number, got " + type_name(x));
  const Value* p = a.get(0, "precision");
  const Value* m = a.get(1, "method");
  const double scale = std::pow(10.0, p ? p->as_double() : 0.0);
  const std::string method = m && m->is_string() ? m->s : "common";
  const int digits = p && p->is_integer() ? static_cast<int>(p->i) : 0;
  if (method == "common" && digits > 0 && digits <= 300 && std::isfinite(x.as_double())) {
    // Python's round(x, n) rounds x's exact binary value (2.675 is 2.67499...), halves to even: as printf does.
    std::string text(static_cast<size_t>(std::snprintf(nullptr, 0, "%.*f", digits, x.as_double())), '\0');
    std::snprintf(text.data(), text.size() + 1, "%.*f", digits, x.as_double());
    return Value::floating(std::strtod(text.c_str(), nullptr));
  }
  double v = x.as_double() * scale;
  // "common" is Python's round(): halves to even.
  v = method == "ceil" ? std::ceil(v) : method == "floor" ? std::floor(v) : std::nearbyint(v);
  return Value::floating(v / scale);
}

Value first_or_last(const Value& x, bool first) {
  if (!first && x.kind == Kind::generator) throw TemplateError("'generator' object is not reversible");
  if (x.kind == Kind::generator && !x.l->empty()) {  // next(generator): one item taken
    Value v = x.l->front();
    x.l->erase(x.l->begin());
    return v;
  }
  List items = iterate(x);
  if (items.empty())
    return Value::undefined(first ? "No first item, sequence was empty." : "No last item, sequence was empty.");
  return first ? items.front() : items.back();
}

Value join(const Value& x, const CallArgs& a) {
  const Value* sep = a.get(0, "d");
  const std::string* attr = attribute_arg(a);
  std::string out;
  bool first = true;
  for (const Value& item : iterate(x)) {
    if (!first && sep) append_str(out, *sep);
    first = false;
    append_str(out, attr ? attribute_of(item, *attr) : item);
  }
  return Value::string(std::move(out));
}

// jinja2's truncate: strings longer than length + leeway end with `end`, cut at a word boundary unless killwords.
Value truncate(const Value& x, const CallArgs& a) {
  const std::string s = str(x);
  const Value *length = a.get(0, "length"), *killwords = a.get(1, "killwords"), *end = a.get(2, "end"),
              *leeway = a.get(3, "leeway");
  const int64_t n = length ? length->i : 255, slack = leeway && !leeway->is_none() ? leeway->i : 5;
  const std::string tail = end ? str(*end) : "...";
  if (pystr::code_points(s) <= n + slack) return Value::string(s);
  const Value stop = Value::integer(std::max<int64_t>(0, n - pystr::code_points(tail)));
  std::string kept = get_slice(Value::string(s), nullptr, &stop, nullptr).s;
  if (!(killwords && killwords->truthy())) {
    const Value space = Value::string(" ");
    kept = pystr::rsplit(kept, &space, 1)[0].s;
  }
  return Value::string(kept + (x.is_markup ? pystr::html_escape(tail) : tail));  // a Markup escapes the end it gets
}

Value center(const Value& x, const CallArgs& a) {
  const std::string s = str(x);
  const Value* width = a.get(0, "width");
  return Value::string(pystr::pad(s, width ? width->i : 80, " ", 'c'));
}

}  // namespace

bool has_filter(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "tojson", "trim",       "length",      "count",   "items",    "join",       "map",       "select",
      "reject", "selectattr", "rejectattr",  "default", "d",        "first",      "last",      "list",
      "string", "int",        "float",       "lower",   "upper",    "capitalize", "title",     "replace",
      "indent", "abs",        "round",       "sort",    "dictsort", "reverse",    "unique",    "sum",
      "min",    "max",        "format",      "attr",    "truncate", "center",     "wordcount", "safe",
      "escape", "e",          "forceescape", "batch",   "slice",    "groupby"};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

// jinja2's built-in filters this engine lacks: a template naming one loads (as in jinja2) and fails only if it
// runs one.
bool jinja2_has_filter(std::string_view name) {
  static constexpr std::string_view kMissing[] = {"filesizeformat", "pprint", "random",   "striptags",
                                                  "urlencode",      "urlize", "wordwrap", "xmlattr"};
  return has_filter(name) || std::find(std::begin(kMissing), std::end(kMissing), name) != std::end(kMissing);
}

namespace {

Value apply_filter(std::string_view name, const Value& x, CallArgs& a) {
  if (name == "tojson") return tojson(x, a);
  if (name == "trim") return Value::string(pystr::strip(str(x), a.get(0, "chars"), true, true));
  if (name == "length" || name == "count") return Value::integer(length(x));
  if (name == "items") {  // a generator of (key, value)
    if (x.is_undefined()) return Value::generator();
    if (!x.is_dict()) throw TemplateError("items: expected a dict, got " + type_name(x));
    CallArgs none;
    Value r;
    call_method(x, "items", none, r);
    return Value::generator(*r.l);
  }
  if (name == "join") return join(x, a);
  if (name == "map") return map(x, a);
  if (name == "select" || name == "reject") return select(x, a, false, name == "select");
  if (name == "selectattr" || name == "rejectattr") return select(x, a, true, name == "selectattr");
  if (name == "default" || name == "d") {
    const Value* fallback = a.get(0, "default_value");
    if (x.is_undefined() || (flag(a, 1, "boolean") && !x.truthy())) return fallback ? *fallback : Value::string("");
    return x;
  }
  if (name == "first" || name == "last") return first_or_last(x, name == "first");
  if (name == "list") return Value::list(iterate(x));
  if (name == "string") return x.is_string() ? x : Value::string(str(x));  // a Markup stays one
  if (name == "int") return to_int(x, a);
  if (name == "float") return to_float(x, a);
  if (name == "lower") return Value::string(pystr::lower(str(x)));
  if (name == "upper") return Value::string(pystr::upper(str(x)));
  if (name == "capitalize") return Value::string(pystr::capitalize(str(x)));
  if (name == "title") {  // jinja2's title: words begin after runs of whitespace, "-", "(", "{", "[" or "<"
    std::string s = str(x), out;
    bool word_start = true;
    for (size_t i = 0, len; i < s.size(); i += len) {
      char32_t c = utf8::decode(s, i, &len);
      std::string one(s, i, len);
      const bool boundary = pystr::is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
      out += boundary ? one : word_start ? pystr::upper(one) : pystr::lower(one);
      word_start = boundary;
    }
    return Value::string(std::move(out));
  }
  if (name == "replace") {
    const Value *old = a.get(0, "old"), *with = a.get(1, "new"), *count = a.get(2, "count");
    if (!old || !with) throw TemplateError("replace needs the old and new strings");
    return Value::string(pystr::replace(str(x), str(*old), str(*with), count && !count->is_none() ? count->i : -1));
  }
  if (name == "indent") return indent(x, a);
  if (name == "abs") {
    if (x.kind == Kind::floating) return Value::floating(std::fabs(x.f));
    if (x.is_integer()) return Value::integer(std::llabs(x.kind == Kind::boolean ? x.b : x.i));
    throw TemplateError("bad operand type for abs(): '" + type_name(x) + "'");
  }
  if (name == "round") return round(x, a);
  if (name == "sort") return sort(x, a);
  if (name == "dictsort") return dictsort(x, a);
  if (name == "reverse") {  // str reversed; reversed(list or dict): an iterator; a generator: list(x) reversed
    const Value step = Value::integer(-1);
    if (x.is_string()) return get_slice(x, nullptr, nullptr, &step);
    List items = iterate(x);
    std::reverse(items.begin(), items.end());
    return x.kind == Kind::generator ? Value::list(std::move(items)) : Value::generator(std::move(items));
  }
  if (name == "unique") {  // unique(case_sensitive=False, attribute=None): the first item of each key, keys hashed
    List out, keys;
    const bool cs = flag(a, 0, "case_sensitive");
    const Value* attr = a.get(1, "attribute");
    for (const Value& v : iterate(x)) {
      const Value key = sort_key(attr && !attr->is_none() ? attribute_of(v, str(*attr)) : v, cs);
      if (key.is_dict() || (key.is_list() && !key.is_tuple))
        throw TemplateError("unhashable type: '" + type_name(key) + "'");
      if (std::none_of(keys.begin(), keys.end(), [&](const Value& k) { return equal(k, key); })) {
        keys.push_back(key);
        out.push_back(v);
      }
    }
    return Value::generator(std::move(out));
  }
  if (name == "sum") {
    const std::string* attr = attribute_arg(a);
    const Value* start = a.get(1, "start");
    Value total = start ? *start : Value::integer(0);
    if (total.is_string()) throw TemplateError("sum() can't sum strings [use ''.join(seq) instead]");  // Python's
    for (const Value& v : iterate(x)) total = binary_op("+", total, attr ? attribute_of(v, *attr) : v);
    return total;
  }
  if (name == "min" || name == "max") {
    List items = iterate(x);
    if (items.empty()) return Value::undefined();
    const bool cs = flag(a, 0, "case_sensitive");
    Value best = items[0];
    for (const Value& v : items)
      if (name == "min" ? less(sort_key(v, cs), sort_key(best, cs)) : less(sort_key(best, cs), sort_key(v, cs)))
        best = v;
    return best;
  }
  if (name == "format") {
    List items = a.pos;
    return pystr::percent_value(x.is_string() ? x : Value::string(str(x)), Value::list(std::move(items), true));
  }
  if (name == "attr") {
    const Value* attr = a.get(0, "name");
    if (!attr || !attr->is_string()) throw TemplateError("attr needs an attribute name");
    return get_attr(x, attr->s, false);
  }
  if (name == "batch") return seq::batch(x, a);
  if (name == "groupby") return seq::groupby(x, a);
  if (name == "slice") return seq::slice(x, a);
  if (name == "truncate") return truncate(x, a);
  if (name == "center") return center(x, a);
  if (name == "wordcount") {  // words: runs of letters, digits and "_" (Python's \w+)
    int64_t words = 0;
    bool in_word = false;
    const std::string s = str(x);
    for (size_t i = 0, len; i < s.size(); i += len) {
      char32_t c = utf8::decode(s, i, &len);
      const bool w = c == '_' || pystr::is_alnum(c);
      words += w && !in_word;
      in_word = w;
    }
    return Value::integer(words);
  }
  if (name == "safe") return Value::markup(str(x));
  if ((name == "escape" || name == "e") && x.is_markup) return x;  // already safe
  if (name == "escape" || name == "e" || name == "forceescape") return Value::markup(pystr::html_escape(str(x)));
  throw TemplateError("filter '" + std::string(name) + "' is not supported");
}

// The filters whose result is a Markup when their input is one (they call Markup's own methods; autoescape off).
bool keeps_markup(std::string_view name) {
  for (std::string_view f : {"trim", "lower", "upper", "capitalize", "center", "indent", "reverse", "truncate"})
    if (name == f) return true;
  return false;
}

}  // namespace

Value call_filter(std::string_view name, const Value& x, CallArgs& a) {
  Value r = apply_filter(name, x, a);
  if (x.is_markup && r.is_string() && keeps_markup(name)) r.is_markup = true;
  return r;
}

}  // namespace qsft::jinja
