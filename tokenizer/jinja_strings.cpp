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

std::string pad(std::string_view s, int64_t width, std::string_view fill, char align) {
  const int64_t n = code_points(s);
  if (width <= n) return std::string(s);
  const int64_t space = width - n;
  const int64_t left = align == '<'   ? 0
                       : align == '>' ? space
                       : align == '^' ? space / 2
                                      : space / 2 + (space & width & 1);
  std::string out;
  for (int64_t k = 0; k < left; ++k) out += fill;
  out += s;
  for (int64_t k = left; k < space; ++k) out += fill;
  return out;
}

Value escape_arg(const Value& v, bool objects) {
  if (v.is_markup || v.is_number() || (!v.is_string() && !objects)) return v;
  return Value::markup(html_escape(str(v)));
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

}  // namespace qsft::jinja::pystr
