#include "tokenizer/jinja_lexer.h"

#include <cctype>

#include "tokenizer/jinja_value.h"
#include "tokenizer/utf8.h"

namespace qsft::jinja {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string normalize_newlines(std::string_view src) {
  std::string out;
  out.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      out += '\n';
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      out += src[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(normalize_newlines(source)) {}

  std::vector<Token> run() {
    bool strip_next = false;  // the previous tag ended with "-": drop the whitespace that follows it
    while (pos_ < src_.size()) {
      if (strip_next)
        while (pos_ < src_.size() && is_space(src_[pos_])) advance(1);
      strip_next = false;
      const size_t data_start = pos_;
      size_t tag = find_tag(pos_);
      std::string text = src_.substr(pos_, tag - pos_);
      const int text_line = line_;
      advance(tag - pos_);
      if (tag == src_.size()) {
        emit_text(std::move(text), text_line);
        break;
      }
      const char kind = src_[tag + 1];  // '{', '%' or '#'
      const char mod = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (mod == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      } else if (mod != '+' && kind != '{') {
        lstrip_line(text, data_start == 0 || src_[data_start - 1] == '\n');
      }
      emit_text(std::move(text), text_line);
      advance(2 + (mod == '-' || mod == '+'));
      if (kind == '#')
        strip_next = skip_comment();
      else
        strip_next = lex_tag(kind);
    }
    out_.push_back({Token::Type::eof, "", line_});
    return std::move(out_);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw TemplateError("chat template line " + std::to_string(line_) + ": " + what);
  }

  void advance(size_t n) {
    for (size_t k = 0; k < n; ++k)
      if (src_[pos_ + k] == '\n') ++line_;
    pos_ += n;
  }

  size_t find_tag(size_t from) const {
    for (size_t p = src_.find('{', from); p != std::string::npos; p = src_.find('{', p + 1))
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) return p;
    return src_.size();
  }

  // lstrip_blocks: spaces and tabs between the line's start and the tag go.
  static void lstrip_line(std::string& text, bool text_starts_line) {
    size_t line_start = text.rfind('\n');
    line_start = line_start == std::string::npos ? 0 : line_start + 1;
    if (line_start == 0 && !text_starts_line) return;
    for (size_t k = line_start; k < text.size(); ++k)
      if (!is_space(text[k])) return;
    text.resize(line_start);
  }

  void emit_text(std::string text, int line) {
    if (!text.empty()) out_.push_back({Token::Type::text, std::move(text), line});
  }

  // After a block or comment tag's end: "-" strips what follows, "+" keeps it, else trim_blocks drops one "\n".
  bool end_block_tag(bool minus, bool plus) {
    if (!minus && !plus && pos_ < src_.size() && src_[pos_] == '\n') advance(1);
    return minus;
  }

  bool skip_comment() {
    const int start = line_;
    size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) {
      line_ = start;
      fail("comment not closed ('#}' missing)");
    }
    const bool minus = end > pos_ && src_[end - 1] == '-';
    const bool plus = end > pos_ && src_[end - 1] == '+';
    advance(end + 2 - pos_);
    return end_block_tag(minus, plus);
  }

  // The tokens of one {{ ... }} or {% ... %} tag; returns whether its end strips the whitespace after it.
  bool lex_tag(char kind) {
    const bool block = kind == '%';
    const size_t first_token = out_.size();
    out_.push_back({block ? Token::Type::block_begin : Token::Type::var_begin, "", line_});
    int depth = 0;  // open brackets: "}}" inside a dict literal does not end the tag
    for (;;) {
      while (pos_ < src_.size() && is_space(src_[pos_])) advance(1);
      if (pos_ >= src_.size())
        fail(block ? "block tag not closed ('%}' missing)" : "expression not closed ('}}' missing)");
      const char end_char = block ? '%' : '}';
      for (const char* prefix : {"-", "+", ""}) {
        std::string_view p(prefix);
        if (depth == 0 && src_.compare(pos_, p.size(), p) == 0 && pos_ + p.size() + 1 < src_.size() &&
            src_[pos_ + p.size()] == end_char && src_[pos_ + p.size() + 1] == '}' && (block || p != "+")) {
          out_.push_back({block ? Token::Type::block_end : Token::Type::var_end, "", line_});
          advance(p.size() + 2);
          if (block && is_raw(first_token)) return lex_raw(p == "-");
          return block ? end_block_tag(p == "-", p == "+") : p == "-";
        }
      }
      lex_token(depth);
    }
  }

  bool is_raw(size_t first_token) const {
    return out_.size() == first_token + 3 && out_[first_token + 1].type == Token::Type::name &&
           out_[first_token + 1].text == "raw";
  }

  // {% raw %}...{% endraw %}: the text in between as it is, less the whitespace a "-" on either tag strips.
  bool lex_raw(bool strip_leading) {
    out_.resize(out_.size() - 3);
    bool strip_next = false;
    for (size_t p = src_.find("{%", pos_); p != std::string::npos; p = src_.find("{%", p + 2)) {
      size_t q = p + 2;
      const bool minus_before = q < src_.size() && src_[q] == '-';
      if (minus_before || (q < src_.size() && src_[q] == '+')) ++q;
      while (q < src_.size() && is_space(src_[q])) ++q;
      if (src_.compare(q, 6, "endraw") != 0) continue;
      q += 6;
      while (q < src_.size() && is_space(src_[q])) ++q;
      const bool minus_after = q < src_.size() && src_[q] == '-';
      const bool plus_after = q < src_.size() && src_[q] == '+';
      if (minus_after || plus_after) ++q;
      if (src_.compare(q, 2, "%}") != 0) continue;
      std::string text = src_.substr(pos_, p - pos_);
      if (minus_before)
        while (!text.empty() && is_space(text.back())) text.pop_back();
      size_t lead = 0;
      while (strip_leading && lead < text.size() && is_space(text[lead])) ++lead;
      text.erase(0, lead);
      emit_text(std::move(text), line_);
      advance(q + 2 - pos_);
      strip_next = end_block_tag(minus_after, plus_after);
      return strip_next;
    }
    fail("{% raw %} without {% endraw %}");
  }

  void lex_token(int& depth) {
    const char c = src_[pos_];
    const int line = line_;
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t end = pos_;
      while (end < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[end])) || src_[end] == '_')) ++end;
      out_.push_back({Token::Type::name, src_.substr(pos_, end - pos_), line});
      advance(end - pos_);
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      lex_number();
    } else if (c == '\'' || c == '"') {
      lex_string(c);
    } else {
      static constexpr std::string_view two[] = {"//", "**", "==", "!=", "<=", ">="};
      for (std::string_view op : two)
        if (src_.compare(pos_, 2, op) == 0) {
          out_.push_back({Token::Type::op, std::string(op), line});
          advance(2);
          return;
        }
      if (std::string_view("+-*/%~<>=()[]{},.:|").find(c) == std::string_view::npos)
        fail(std::string("unexpected character '") + c + "'");
      if (c == '(' || c == '[' || c == '{') ++depth;
      if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
      out_.push_back({Token::Type::op, std::string(1, c), line});
      advance(1);
    }
  }

  void lex_number() {
    size_t end = pos_;
    auto digits = [&] {
      while (end < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[end])) || src_[end] == '_')) ++end;
    };
    digits();
    bool is_float = false;
    // After "." (x.0) a number is an index, never a float.
    const bool after_dot = !out_.empty() && out_.back().type == Token::Type::op && out_.back().text == ".";
    if (!after_dot && end + 1 < src_.size() && src_[end] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[end + 1]))) {
      ++end;
      digits();
      is_float = true;
    }
    if (!after_dot && end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
      size_t e = end + 1;
      if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
      if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
        end = e;
        digits();
        is_float = true;
      }
    }
    std::string text;
    for (size_t k = pos_; k < end; ++k)
      if (src_[k] != '_') text += src_[k];
    out_.push_back({is_float ? Token::Type::floating : Token::Type::integer, text, line_});
    advance(end - pos_);
  }

  // A string literal with Python's escapes (jinja2 decodes them with unicode-escape).
  void lex_string(char quote) {
    const int line = line_;
    std::string value;
    size_t p = pos_ + 1;
    for (;; ++p) {
      if (p >= src_.size()) fail("string literal not closed");
      char c = src_[p];
      if (c == quote) break;
      if (c != '\\' || p + 1 >= src_.size()) {
        value += c;
        continue;
      }
      char e = src_[++p];
      switch (e) {
        case 'n': value += '\n'; break;
        case 't': value += '\t'; break;
        case 'r': value += '\r'; break;
        case '0': value += '\0'; break;
        case 'a': value += '\a'; break;
        case 'b': value += '\b'; break;
        case 'f': value += '\f'; break;
        case 'v': value += '\v'; break;
        case '\n': break;
        case 'x':
        case 'u':
        case 'U': {
          const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (p + n >= src_.size()) fail("bad \\" + std::string(1, e) + " escape");
          utf8::append(value, static_cast<char32_t>(std::stoul(src_.substr(p + 1, n), nullptr, 16)));
          p += n;
          break;
        }
        case '\\':
        case '\'':
        case '"': value += e; break;
        default: value += '\\'; value += e;
      }
    }
    out_.push_back({Token::Type::string, std::move(value), line});
    advance(p + 1 - pos_);
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> out_;
};

}  // namespace

std::vector<Token> lex(std::string_view source) { return Lexer(source).run(); }

}  // namespace qsft::jinja
