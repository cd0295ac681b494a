// The str methods of the Jinja engine (declared in tokenizer/jinja_builtins.h): those transformers' sandbox lets a
// chat template call, with CPython's semantics over code points (indices, widths and counts are code points).
#include <utf8proc.h>

#include <algorithm>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/utf8.h"

namespace qsft::jinja {

namespace pystr {

int64_t int_arg(const Value* v, int64_t fallback, const char* what) {
  if (!v || v->is_none()) return fallback;
  if (!v->is_integer()) throw TemplateError(std::string(what) + " must be an integer, not " + type_name(*v));
  return v->kind == Value::Kind::boolean ? v->b : v->i;
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

const std::string& str_arg(const CallArgs& args, size_t index, const char* name) {
  const Value* v = args.get(index, name);
  if (!v || !v->is_string())
    throw TemplateError(std::string("argument '") + name + "' must be str, not " + (v ? type_name(*v) : "missing"));
  return v->s;
}

}  // namespace pystr

namespace {

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

// s.find / rfind / index / rindex / count(sub, start, end) over s[start:end] with CPython's index rules: negative
// indices count from the end; start beyond the end (or a range shorter than sub) finds nothing.
int64_t find_or_count(const Value& obj, std::string_view m, const CallArgs& a) {
  const std::string& s = obj.s;
  const std::string& sub = pystr::str_arg(a, 0, "sub");
  const std::vector<size_t> at = pystr::code_point_offsets(s);
  const int64_t n = int64_t(at.size()) - 1, sub_n = pystr::code_points(sub);
  auto index = [&](const char* name, size_t k, int64_t fallback) {
    int64_t i = pystr::int_arg(a.get(k, name), fallback, name);
    return i < 0 ? std::max<int64_t>(i + n, 0) : i;
  };
  const int64_t start = index("start", 1, 0), end = std::min(index("end", 2, n), n);
  if (end - start < sub_n) {  // nothing to find
    if (m == "index" || m == "rindex") throw TemplateError("substring not found");
    return m == "count" ? 0 : -1;
  }
  const std::string_view range = std::string_view(s).substr(at[size_t(start)], at[size_t(end)] - at[size_t(start)]);
  if (m == "count") {
    if (sub.empty()) return end - start + 1;
    int64_t count = 0;
    for (size_t p = range.find(sub); p != std::string_view::npos; p = range.find(sub, p + sub.size())) ++count;
    return count;
  }
  const size_t p = m == "rfind" || m == "rindex" ? range.rfind(sub) : range.find(sub);
  if (p == std::string::npos) {
    if (m == "index" || m == "rindex") throw TemplateError("substring not found");
    return -1;
  }
  return start + pystr::code_points(std::string_view(s).substr(at[size_t(start)], p));
}

// ljust / rjust / center(width, fillchar=' ') and zfill(width): s padded to width code points.
std::string justify(const std::string& s, std::string_view m, const CallArgs& a) {
  const Value* width = a.get(0, "width");
  if (!width || !width->is_integer()) throw TemplateError(std::string(m) + "() takes an integer width");
  std::string fill = " ";
  if (const Value* f = a.get(1, "fillchar"); f && m != "zfill") {
    if (!f->is_string() || pystr::code_points(f->s) != 1)
      throw TemplateError("The fill character must be exactly one character long");
    fill = f->s;
  }
  if (m != "zfill") return pystr::pad(s, width->i, fill, m == "ljust" ? '<' : m == "rjust" ? '>' : 'c');
  const int64_t n = pystr::code_points(s);
  if (width->i <= n) return s;
  const size_t sign = !s.empty() && (s[0] == '+' || s[0] == '-');  // zeros go after a sign
  return s.substr(0, sign) + std::string(size_t(width->i - n), '0') + s.substr(sign);
}

// s.partition(sep): (head, sep, tail) around the first sep, else (s, '', ''); rpartition: around the last, else
// ('', '', s).
Value partition(const std::string& s, const std::string& sep, bool first) {
  if (sep.empty()) throw TemplateError("empty separator");
  const size_t p = first ? s.find(sep) : s.rfind(sep);
  if (p == std::string::npos)
    return first ? Value::list({Value::string(s), Value::string(""), Value::string("")}, true)
                 : Value::list({Value::string(""), Value::string(""), Value::string(s)}, true);
  return Value::list({Value::string(s.substr(0, p)), Value::string(sep), Value::string(s.substr(p + sep.size()))},
                     true);
}

}  // namespace

bool string_method(const Value& obj, std::string_view m, CallArgs& a, Value& r) {
  const std::string& s = obj.s;
  if (m == "startswith" || m == "endswith") {
    const Value* affix = a.get(0, "prefix");
    if (!affix) throw TemplateError(std::string(m) + " takes at least 1 argument");
    const Value* start = a.get(1, "start");
    const Value* end = a.get(2, "end");  // s.startswith(p, start, end) tests s[start:end]
    r = Value::boolean(
        affix_matches(start || end ? get_slice(obj, start, end, nullptr) : obj, *affix, m == "startswith"));
  } else if (m == "strip" || m == "lstrip" || m == "rstrip") {
    r = Value::string(pystr::strip(s, a.get(0, "chars"), m != "rstrip", m != "lstrip"));
  } else if (m == "split" || m == "rsplit") {
    const Value* sep = a.get(0, "sep");
    int64_t maxsplit = pystr::int_arg(a.get(1, "maxsplit"), -1, "maxsplit");
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
    r = Value::string(pystr::replace(s, pystr::str_arg(a, 0, "old"), pystr::str_arg(a, 1, "new"),
                                     pystr::int_arg(a.get(2, "count"), -1, "count")));
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
  } else if (m == "find" || m == "rfind" || m == "index" || m == "rindex" || m == "count") {
    r = Value::integer(find_or_count(obj, m, a));
  } else if (m == "ljust" || m == "rjust" || m == "center" || m == "zfill") {
    r = Value::string(justify(s, m, a));
  } else if (m == "partition" || m == "rpartition") {
    r = partition(s, pystr::str_arg(a, 0, "sep"), m == "partition");
  } else if (m == "removeprefix" || m == "removesuffix") {
    const std::string& affix = pystr::str_arg(a, 0, m == "removeprefix" ? "prefix" : "suffix");
    const bool has = m == "removeprefix" ? s.starts_with(affix) : s.ends_with(affix);
    r = Value::string(!has ? s : m == "removeprefix" ? s.substr(affix.size()) : s.substr(0, s.size() - affix.size()));
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
  } else if (m == "isdigit" || m == "isdecimal" || m == "isnumeric" || m == "isspace" || m == "isalpha" ||
             m == "isalnum") {
    bool ok = !s.empty();
    for (size_t i = 0, len; ok && i < s.size(); i += len) {
      char32_t c = utf8::decode(s, i, &len);
      const utf8proc_category_t cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
      if (m == "isdigit" || m == "isdecimal")  // Nd (Python's isdigit also takes superscripts: No digits)
        ok = cat == UTF8PROC_CATEGORY_ND;
      else if (m == "isnumeric")  // Nd, Nl, No (Python's also takes CJK numerals, which are Lo)
        ok = cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
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

}  // namespace qsft::jinja
