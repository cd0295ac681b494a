// Python str operations on UTF-8 text for the Jinja engine (declared in tokenizer/jinja_builtins.h).
#include <utf8proc.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/utf8.h"

namespace qsft::jinja::pystr {

namespace {

std::u32string decode_all(std::string_view s) {
  std::u32string out;
  for (size_t i = 0, len; i < s.size(); i += len) out += utf8::decode(s, i, &len);
  return out;
}

std::string encode_all(std::u32string_view s) {
  std::string out;
  for (char32_t cp : s) utf8::append(out, cp);
  return out;
}

template <class F>
std::string map_code_points(std::string_view s, F&& f) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0, len; i < s.size(); i += len) utf8::append(out, f(utf8::decode(s, i, &len)));
  return out;
}

char32_t to_upper(char32_t c) { return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c))); }
char32_t to_lower(char32_t c) { return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))); }
char32_t to_title(char32_t c) { return static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c))); }
bool is_cased(char32_t c) {
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}

std::string sep_string(const Value* sep) {
  if (!sep->is_string()) throw TemplateError("must be str or None, not " + type_name(*sep));
  if (sep->s.empty()) throw TemplateError("empty separator");
  return sep->s;
}

// Whitespace-separated words (Python's split() without a separator), from the left or the right.
List split_words(std::string_view s, int64_t maxsplit, bool from_right) {
  std::u32string u = decode_all(s);
  std::vector<std::u32string> words;
  if (!from_right) {
    size_t i = 0;
    while (i < u.size()) {
      while (i < u.size() && is_space(u[i])) ++i;
      if (i == u.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(words.size()) == maxsplit) {
        size_t end = u.size();
        while (end > i && is_space(u[end - 1])) --end;
        words.push_back(u.substr(i, end - i));
        break;
      }
      size_t j = i;
      while (j < u.size() && !is_space(u[j])) ++j;
      words.push_back(u.substr(i, j - i));
      i = j;
    }
  } else {
    size_t i = u.size();
    while (i > 0) {
      while (i > 0 && is_space(u[i - 1])) --i;
      if (i == 0) break;
      if (maxsplit >= 0 && static_cast<int64_t>(words.size()) == maxsplit) {
        size_t begin = 0;
        while (begin < i && is_space(u[begin])) ++begin;
        words.push_back(u.substr(begin, i - begin));
        break;
      }
      size_t j = i;
      while (j > 0 && !is_space(u[j - 1])) --j;
      words.push_back(u.substr(j, i - j));
      i = j;
    }
    std::reverse(words.begin(), words.end());
  }
  List out;
  for (auto& w : words) out.push_back(Value::string(encode_all(w)));
  return out;
}

}  // namespace

bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

bool is_alpha(char32_t c) {
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
}

bool is_alnum(char32_t c) {
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return is_alpha(c) || (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}

int64_t code_points(std::string_view s) {
  int64_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string strip(std::string_view s, const Value* chars, bool left, bool right) {
  std::u32string set;
  const bool whitespace = !chars || chars->is_none() || chars->is_undefined();
  if (!whitespace) {
    if (!chars->is_string()) throw TemplateError("strip arg must be None or str, not " + type_name(*chars));
    set = decode_all(chars->s);
  }
  auto strippable = [&](char32_t c) { return whitespace ? is_space(c) : set.find(c) != std::u32string::npos; };
  std::u32string u = decode_all(s);
  size_t begin = 0, end = u.size();
  if (left)
    while (begin < end && strippable(u[begin])) ++begin;
  if (right)
    while (end > begin && strippable(u[end - 1])) --end;
  return encode_all(std::u32string_view(u).substr(begin, end - begin));
}

std::string upper(std::string_view s) { return map_code_points(s, to_upper); }
std::string lower(std::string_view s) { return map_code_points(s, to_lower); }

std::string title(std::string_view s) {
  bool previous_cased = false;
  return map_code_points(s, [&](char32_t c) {
    char32_t r = previous_cased ? to_lower(c) : to_title(c);
    previous_cased = is_cased(c);
    return r;
  });
}

std::string capitalize(std::string_view s) {
  bool first = true;
  return map_code_points(s, [&](char32_t c) {
    char32_t r = first ? to_title(c) : to_lower(c);
    first = false;
    return r;
  });
}

static bool cased_and_all(std::string_view s, utf8proc_category_t allowed) {
  bool any = false;
  for (size_t i = 0, len; i < s.size(); i += len) {
    char32_t c = utf8::decode(s, i, &len);
    if (!is_cased(c)) continue;
    if (utf8proc_category(static_cast<utf8proc_int32_t>(c)) != allowed) return false;
    any = true;
  }
  return any;
}

bool is_lower(std::string_view s) { return cased_and_all(s, UTF8PROC_CATEGORY_LL); }
bool is_upper(std::string_view s) { return cased_and_all(s, UTF8PROC_CATEGORY_LU); }

List split(std::string_view s, const Value* sep, int64_t maxsplit) {
  if (!sep || sep->is_none()) return split_words(s, maxsplit, false);
  const std::string d = sep_string(sep);
  List out;
  size_t start = 0;
  for (size_t p; (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) &&
                 (p = s.find(d, start)) != std::string_view::npos;
       start = p + d.size())
    out.push_back(Value::string(std::string(s.substr(start, p - start))));
  out.push_back(Value::string(std::string(s.substr(start))));
  return out;
}

List rsplit(std::string_view s, const Value* sep, int64_t maxsplit) {
  if (!sep || sep->is_none()) return split_words(s, maxsplit, true);
  const std::string d = sep_string(sep);
  List out;
  size_t end = s.size();
  while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
    if (end < d.size()) break;
    size_t p = s.rfind(d, end - d.size());
    if (p == std::string_view::npos) break;
    out.push_back(Value::string(std::string(s.substr(p + d.size(), end - p - d.size()))));
    end = p;
  }
  out.push_back(Value::string(std::string(s.substr(0, end))));
  std::reverse(out.begin(), out.end());
  return out;
}

std::string replace(std::string_view s, std::string_view old, std::string_view with, int64_t count) {
  std::string out;
  if (old.empty()) {  // Python inserts `with` before every code point and at the end
    int64_t n = 0;
    for (size_t i = 0, len; i <= s.size(); i += len) {
      if (count < 0 || n++ < count) out += with;
      if (i == s.size()) break;
      utf8::decode(s, i, &len);
      out.append(s.substr(i, len));
    }
    return out;
  }
  size_t start = 0;
  for (int64_t n = 0; count < 0 || n < count; ++n) {
    size_t p = s.find(old, start);
    if (p == std::string_view::npos) break;
    out.append(s.substr(start, p - start));
    out += with;
    start = p + old.size();
  }
  out.append(s.substr(start));
  return out;
}

std::string format(std::string_view fmt, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if ((c == '{' || c == '}') && i + 1 < fmt.size() && fmt[i + 1] == c) {
      out += c;
      ++i;
    } else if (c == '{') {
      size_t close = fmt.find('}', i);
      if (close == std::string_view::npos) throw TemplateError("Single '{' encountered in format string");
      std::string field(fmt.substr(i + 1, close - i - 1));
      if (field.find_first_of(":!") != std::string::npos) throw TemplateError("format specs are not supported");
      const Value* v = nullptr;
      if (field.empty())
        v = auto_index < args.pos.size() ? &args.pos[auto_index++] : nullptr;
      else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
        size_t k = std::stoul(field);
        v = k < args.pos.size() ? &args.pos[k] : nullptr;
      } else {
        for (const auto& [name, x] : args.kw)
          if (name == field) v = &x;
      }
      if (!v) throw TemplateError("format: no argument for {" + field + "}");
      append_str(out, *v);
      i = close;
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

// One printf-style conversion spec after its '%': [(key)][flags][width][.precision][length]type.
struct PercentSpec {
  std::string key, flags;
  int width = -1, precision = -1;
  char type = 0;
  bool keyed = false;
};

PercentSpec parse_percent_spec(std::string_view fmt, size_t& i) {
  PercentSpec spec;
  auto digits = [&] {
    int n = 0;
    while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) {
      n = n * 10 + (fmt[i++] - '0');
      if (n > 100000) throw TemplateError("format width or precision too big");
    }
    return n;
  };
  if (i < fmt.size() && fmt[i] == '(') {
    const size_t close = fmt.find(')', i);
    if (close == std::string_view::npos) throw TemplateError("incomplete format key");
    spec.key = std::string(fmt.substr(i + 1, close - i - 1));
    spec.keyed = true;
    i = close + 1;
  }
  while (i < fmt.size() && std::string_view("-+ #0").find(fmt[i]) != std::string_view::npos) spec.flags += fmt[i++];
  if (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) spec.width = digits();
  if (i < fmt.size() && fmt[i] == '.') {
    ++i;
    spec.precision = digits();
  }
  while (i < fmt.size() && (fmt[i] == 'l' || fmt[i] == 'h' || fmt[i] == 'L')) ++i;
  if (i == fmt.size()) throw TemplateError("incomplete format");
  spec.type = fmt[i];
  return spec;
}

// Text padded to the spec's width in code points (left-aligned with the '-' flag), cut to its precision for %s %r.
std::string pad_text(std::string text, const PercentSpec& spec) {
  std::u32string cps = decode_all(text);
  if (spec.precision >= 0 && cps.size() > static_cast<size_t>(spec.precision)) {
    cps.resize(static_cast<size_t>(spec.precision));
    text = encode_all(cps);
  }
  if (spec.width > static_cast<int>(cps.size())) {
    const std::string fill(static_cast<size_t>(spec.width) - cps.size(), ' ');
    text = spec.flags.find('-') != std::string::npos ? text + fill : fill + text;
  }
  return text;
}

// A number through C's printf with the spec's flags, width and precision (Python's %d %i %u %x %X %o %f %e %g).
std::string format_number(const Value& v, const PercentSpec& spec) {
  const char t = spec.type;
  const bool integral = t == 'd' || t == 'i' || t == 'u' || t == 'x' || t == 'X' || t == 'o';
  if (!v.is_number() || ((t == 'x' || t == 'X' || t == 'o') && !v.is_integer()))
    throw TemplateError(std::string("%") + t + " format: a real number is required, not " + type_name(v));
  std::string c = "%" + spec.flags;  // appended piece by piece: GCC 12's -Wrestrict misfires on "." + to_string()
  if (spec.width >= 0) c += std::to_string(spec.width);
  if (spec.precision >= 0) c += '.' + std::to_string(spec.precision);
  auto print = [](const std::string& spec, auto x) {
    std::string out(static_cast<size_t>(std::snprintf(nullptr, 0, spec.c_str(), x)), '\0');
    std::snprintf(out.data(), out.size() + 1, spec.c_str(), x);
    return out;
  };
  if (!integral) return print(c + t, v.as_double());
  if (v.kind == Value::Kind::floating && !std::isfinite(v.f))
    throw TemplateError("cannot convert float " + std::string(std::isnan(v.f) ? "NaN" : "infinity") + " to integer");
  const long long n = v.kind == Value::Kind::boolean ? v.b : v.is_integer() ? v.i : static_cast<long long>(v.f);
  return print(c + "ll" + (t == 'i' || t == 'u' ? 'd' : t), n);
}

}  // namespace

std::string percent(std::string_view fmt, const Value& args) {
  const List single{args};
  const List& items = args.is_list() && args.is_tuple ? *args.l : single;
  std::string out;
  size_t k = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    ++i;
    const PercentSpec spec = parse_percent_spec(fmt, i);
    if (spec.type == '%') {
      out += '%';
      continue;
    }
    const Value* v;
    if (spec.keyed) {
      if (!args.is_dict()) throw TemplateError("format requires a mapping");
      v = args.find(std::string_view(spec.key));
      if (!v) throw TemplateError("KeyError: '" + spec.key + "'");
    } else {
      if (k >= items.size()) throw TemplateError("not enough arguments for format string");
      v = &items[k++];
    }
    std::string text;
    if (spec.type == 's' || spec.type == 'r') {
      spec.type == 's' ? append_str(text, *v) : append_repr(text, *v);
      out += pad_text(std::move(text), spec);
    } else if (std::string_view("diuxXofFeEgG").find(spec.type) != std::string_view::npos) {
      out += format_number(*v, spec);
    } else {
      throw TemplateError(std::string("unsupported format character '") + spec.type + "' for " + type_name(*v));
    }
  }
  if (k < items.size() && !(items.size() == 1 && args.is_dict()))
    throw TemplateError("not all arguments converted during string formatting");
  return out;
}

}  // namespace qsft::jinja::pystr
