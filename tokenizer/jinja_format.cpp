// Python's string formatting for the Jinja engine (declared in tokenizer/jinja_builtins.h): str.format with the
// format-spec mini-language ({:>8}, {:.2f}, {0:03d}, {x!r}, {0[key]}, {0.attr}) and printf-style `fmt % args`.
// Numbers go through C's printf for the digits; signs, prefixes, grouping, padding and Python's spellings of inf and
// nan are done here.
#include <cctype>
#include <cmath>
#include <cstdio>

#include "engine/base/brace_fields.h"
#include "tokenizer/jinja_builtins.h"
#include "tokenizer/utf8.h"

namespace qsft::jinja::pystr {

namespace {

// A replacement field's format spec: [[fill]align][sign][#][0][width][grouping][.precision][type].
struct FormatSpec {
  std::string fill;  // one code point; empty: ' ' (or '0' with the 0 flag)
  char align = 0;    // < > ^ =; 0: the value's default
  char sign = '-';   // + - or space
  bool alt = false, zero = false;
  int64_t width = -1, precision = -1;
  char grouping = 0;  // ',' or '_'
  char type = 0;
};

// s cut to its first n code points (n < 0: whole): a precision applied to text.
std::string first_code_points(std::string s, int64_t n) {
  if (n < 0) return s;
  const std::vector<size_t> at = code_point_offsets(s);
  if (at.size() - 1 > size_t(n)) s.resize(at[size_t(n)]);
  return s;
}

// printf's text of the arguments for conv.
template <class... Args>
std::string printf_text(const char* conv, Args... args) {
  std::string out(static_cast<size_t>(std::snprintf(nullptr, 0, conv, args...)), '\0');
  std::snprintf(out.data(), out.size() + 1, conv, args...);
  return out;
}

int64_t spec_number(std::string_view spec, size_t& i) {
  int64_t n = 0;
  while (i < spec.size() && std::isdigit(static_cast<unsigned char>(spec[i]))) {
    n = n * 10 + (spec[i++] - '0');
    if (n > 100000) throw TemplateError("format width or precision too big");
  }
  return n;
}

FormatSpec parse_format_spec(std::string_view spec) {
  FormatSpec f;
  size_t i = 0;
  auto is_align = [](char c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  if (!spec.empty()) {
    size_t len;
    utf8::decode(spec, 0, &len);
    if (len < spec.size() && is_align(spec[len])) {
      f.fill = std::string(spec.substr(0, len));
      f.align = spec[len];
      i = len + 1;
    } else if (is_align(spec[0])) {
      f.align = spec[i++];
    }
  }
  if (i < spec.size() && (spec[i] == '+' || spec[i] == '-' || spec[i] == ' ')) f.sign = spec[i++];
  if (i < spec.size() && spec[i] == '#') f.alt = true, ++i;
  if (i < spec.size() && spec[i] == '0') f.zero = true, ++i;
  if (i < spec.size() && std::isdigit(static_cast<unsigned char>(spec[i]))) f.width = spec_number(spec, i);
  if (i < spec.size() && (spec[i] == ',' || spec[i] == '_')) f.grouping = spec[i++];
  if (i < spec.size() && spec[i] == '.') {
    if (++i == spec.size() || !std::isdigit(static_cast<unsigned char>(spec[i])))
      throw TemplateError("Format specifier missing precision");
    f.precision = spec_number(spec, i);
  }
  if (i < spec.size()) f.type = spec[i++];
  if (i != spec.size()) throw TemplateError("Invalid format specifier '" + std::string(spec) + "'");
  return f;
}

// digits with sep between groups of `every`, counted from the right.
std::string grouped(const std::string& digits, char sep, size_t every) {
  if (!sep) return digits;
  std::string out;
  for (size_t k = 0; k < digits.size(); ++k) {
    if (k && (digits.size() - k) % every == 0) out += sep;
    out += digits[k];
  }
  return out;
}

// The spec's fill: its own, else '0' with the 0 flag, else ' '.
std::string fill_of(const FormatSpec& f) { return !f.fill.empty() ? f.fill : f.zero ? "0" : " "; }

// sign_prefix + body padded to the width: '=' puts the fill between them; the 0 flag means fill '0', align '='.
std::string align_field(const std::string& sign_prefix, const std::string& body, const FormatSpec& f) {
  const std::string fill = fill_of(f);
  const char align = f.align ? f.align : f.zero ? '=' : '>';
  if (align == '=') return sign_prefix + pad(body, f.width - code_points(sign_prefix), fill, '>');
  return pad(sign_prefix + body, f.width, fill, align);
}

std::string sign_of(bool negative, const FormatSpec& f) {
  return negative ? "-" : f.sign == '+' ? "+" : f.sign == ' ' ? " " : "";
}

// A float by the spec's type: e E f F g G n % or none (repr without a precision, else 'g' keeping a ".0").
std::string format_float(double x, const FormatSpec& f) {
  const char t = f.type;
  if (std::string_view("eEfFgGn%").find(t) == std::string_view::npos && t != 0)
    throw TemplateError(std::string("Unknown format code '") + t + "' for object of type 'float'");
  const bool upper = t == 'E' || t == 'F' || t == 'G';
  std::string body;
  const double a = std::fabs(x);
  if (!std::isfinite(x)) {
    body = std::isnan(x) ? (upper ? "NAN" : "nan") : (upper ? "INF" : "inf");
    if (t == '%') body += '%';
  } else if (t == 0 && f.precision < 0) {
    append_str(body, Value::floating(a));  // repr
  } else {
    const int64_t p = f.precision < 0 ? 6 : f.precision;
    const bool general = t == 'g' || t == 'G' || t == 'n' || t == 0;
    std::string conv = "%";
    if (f.alt) conv += '#';
    conv += ".*";
    conv += general ? (upper ? 'G' : 'g') : t == '%' ? 'f' : t;
    body = printf_text(conv.c_str(), int(general && p == 0 ? 1 : p), t == '%' ? a * 100 : a);
    if (t == '%') body += '%';
    if (t == 0 && body.find_first_of(".e") == std::string::npos) body += ".0";
  }
  if (f.grouping && std::isdigit(static_cast<unsigned char>(body[0]))) {
    const size_t int_end = std::min(body.find_first_of(".eE%"), body.size());
    body = grouped(body.substr(0, int_end), f.grouping, 3) + body.substr(int_end);
  }
  return align_field(sign_of(std::signbit(x), f), body, f);
}

// An int by the spec's type: d n b o x X c, a float type, or none (decimal).
std::string format_int(int64_t n, const FormatSpec& f) {
  const char t = f.type;
  if (std::string_view("eEfFgG%").find(t) != std::string_view::npos && t != 0) return format_float(double(n), f);
  const uint64_t m = n < 0 ? uint64_t(0) - uint64_t(n) : uint64_t(n);
  std::string digits, prefix;
  if (t == 0 || t == 'd' || t == 'n') {
    digits = grouped(std::to_string(m), f.grouping, 3);
  } else if (t == 'b' || t == 'o' || t == 'x' || t == 'X') {
    if (f.grouping == ',') throw TemplateError(std::string("Cannot specify ',' with '") + t + "'.");
    const unsigned base = t == 'b' ? 2 : t == 'o' ? 8 : 16;
    for (uint64_t r = m; r || digits.empty(); r /= base) digits.insert(digits.begin(), "0123456789abcdef"[r % base]);
    if (t == 'X')
      for (char& c : digits) c = char(std::toupper(static_cast<unsigned char>(c)));
    digits = grouped(digits, f.grouping, 4);
    if (f.alt) prefix = std::string("0") + (t == 'b' ? 'b' : t == 'o' ? 'o' : t);
  } else if (t == 'c') {
    utf8::append(digits, char32_t(n));
    return align_field("", digits, f);
  } else {
    throw TemplateError(std::string("Unknown format code '") + t + "' for object of type 'int'");
  }
  return align_field(sign_of(n < 0, f) + prefix, digits, f);
}

// format(v, spec) as Python's __format__ of v's type.
std::string format_value(const Value& v, std::string_view text) {
  if (text.empty()) return str(v);
  const FormatSpec f = parse_format_spec(text);
  if (v.is_string()) {
    if (f.type != 0 && f.type != 's')
      throw TemplateError(std::string("Unknown format code '") + f.type + "' for object of type 'str'");
    if (f.sign != '-' || f.alt || f.grouping)
      throw TemplateError("Sign, '#' or grouping not allowed in string format specifier");
    if (f.align == '=') throw TemplateError("'=' alignment not allowed in string format specifier");
    return pad(first_code_points(v.s, f.precision), f.width, fill_of(f), f.align ? f.align : '<');
  }
  if (v.is_integer()) return format_int(v.kind == Value::Kind::boolean ? v.b : v.i, f);
  if (v.kind == Value::Kind::floating) return format_float(v.f, f);
  throw TemplateError("unsupported format string passed to " + type_name(v) + ".__format__");
}

// Positional fields are numbered automatically ({}) or manually ({0}), not both in one string (Python's
// string.Formatter, which jinja2's sandbox uses, counts only a name of digits alone as manual: {0[a]} is neither).
struct FieldNumbers {
  size_t next = 0;
  bool automatic = false, manual = false;
};

// The value of a replacement field's name: "" (the next positional argument), a position or a keyword, then any
// .attribute and [key] accessors (jinja2's sandbox resolves both as its getattr and getitem do).
Value field_value(std::string_view name, const CallArgs& args, FieldNumbers& numbers) {
  const size_t base_end = std::min(name.find_first_of(".["), name.size());
  const std::string base(name.substr(0, base_end));
  const bool positional = base.empty() || std::isdigit(static_cast<unsigned char>(base[0]));
  if (base.empty()) numbers.automatic = true;
  if (positional && !base.empty() && base_end == name.size()) numbers.manual = true;
  if (numbers.automatic && numbers.manual)
    throw TemplateError("cannot switch between automatic and manual field numbering");
  const Value* v = nullptr;
  if (base.empty()) {
    v = numbers.next < args.pos.size() ? &args.pos[numbers.next++] : nullptr;
  } else if (positional) {
    const size_t k = std::stoul(base);
    v = k < args.pos.size() ? &args.pos[k] : nullptr;
  } else {
    for (const auto& [kw, x] : args.kw)
      if (kw == base) v = &x;
  }
  if (!v) throw TemplateError("format: no argument for {" + std::string(name) + "}");
  Value out = *v;
  for (size_t i = base_end; i < name.size();) {
    if (name[i] == '.') {
      const size_t end = std::min(name.find_first_of(".[", i + 1), name.size());
      out = get_attr(out, std::string(name.substr(i + 1, end - i - 1)));
      i = end;
    } else {
      const size_t close = name.find(']', i);
      if (close == std::string_view::npos) throw TemplateError("Missing ']' in format string");
      const std::string key(name.substr(i + 1, close - i - 1));
      const bool index = !key.empty() && key.find_first_not_of("0123456789") == std::string::npos;
      out = get_item(out, index ? Value::integer(std::stoll(key)) : Value::string(key));
      i = close + 1;
    }
  }
  return out;
}

}  // namespace

std::string format(std::string_view fmt, const CallArgs& args) {
  std::string out;
  FieldNumbers numbers;
  auto literal = [&](char c) { out += c; };
  auto field = [&](std::string_view field) {
    const size_t bracket = field.find('[');
    const size_t colon = field.find(':', bracket == std::string_view::npos ? 0 : field.find(']', bracket));
    const std::string_view head = field.substr(0, colon);
    const size_t bang = head.rfind('!');
    Value v = field_value(head.substr(0, bang), args, numbers);
    if (bang != std::string_view::npos) {  // !r: repr, !s: str, then the spec applies to that string
      const std::string_view conv = head.substr(bang + 1);
      if (conv != "r" && conv != "s") throw TemplateError("Unknown conversion specifier " + std::string(conv));
      std::string text;
      conv == "r" ? append_repr(text, v) : append_str(text, v);
      v = Value::string(std::move(text));
    }
    out += format_value(v, colon == std::string_view::npos ? std::string_view() : field.substr(colon + 1));
  };
  scan_brace_fields(fmt, literal, field, [](BraceError e) {
    throw TemplateError(e == BraceError::lone_close    ? "Single '}' encountered in format string"
                        : e == BraceError::open_at_end ? "Single '{' encountered in format string"
                                                       : "expected '}' before end of string");
  });
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
  auto digits = [&] { return static_cast<int>(spec_number(fmt, i)); };
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
  return pad(first_code_points(std::move(text), spec.precision), spec.width, " ",
             spec.flags.find('-') != std::string::npos ? '<' : '>');
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
  if (!integral) return printf_text((c + t).c_str(), v.as_double());
  if (v.kind == Value::Kind::floating && !std::isfinite(v.f))
    throw TemplateError("cannot convert float " + std::string(std::isnan(v.f) ? "NaN" : "infinity") + " to integer");
  const long long n = v.kind == Value::Kind::boolean ? v.b : v.is_integer() ? v.i : static_cast<long long>(v.f);
  return printf_text((c + "ll" + (t == 'i' || t == 'u' ? 'd' : t)).c_str(), n);
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

Value percent_value(const Value& fmt, const Value& args) {
  if (!fmt.is_markup) return Value::string(percent(fmt.s, args));
  Value escaped = args;
  if (args.is_list() && args.is_tuple) {
    List items;
    for (const Value& v : *args.l) items.push_back(escape_arg(v, true));
    escaped = Value::list(std::move(items), true);
  } else if (args.is_dict()) {
    escaped = Value::dict();
    for (const auto& [k, v] : *args.d) escaped.set(k, escape_arg(v, true));
  } else {
    escaped = escape_arg(args, true);
  }
  return Value::markup(percent(fmt.s, escaped));
}

}  // namespace qsft::jinja::pystr
