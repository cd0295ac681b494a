// The scan of a Python str.format string, shared by the chat templates' str.format (tokenizer/jinja_format.cpp) and
// the data's field templates (data/format_text.cpp): "{{" and "}}" are literal braces, "{...}" is a replacement
// field (up to the first '}': no nested fields), any other character is literal. A lone '}', a '{' that ends the
// string or a '{' without a '}' after it is malformed, as in Python ("Single '}' encountered in format string",
// "Single '{' encountered in format string", "expected '}' before end of string").
#pragma once
#include <cstddef>
#include <string_view>

namespace qsft {

enum class BraceError { lone_close, open_at_end, unclosed_open };

// literal(c) for each literal character, field(text between the braces) for each replacement field, in order;
// error(BraceError) where the string is malformed, which must throw.
template <class Literal, class Field, class Error>
void scan_brace_fields(std::string_view fmt, Literal&& literal, Field&& field, Error&& error) {
  for (std::size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if ((c == '{' || c == '}') && i + 1 < fmt.size() && fmt[i + 1] == c) {
      literal(c);
      ++i;
    } else if (c == '}') {
      error(BraceError::lone_close);
      return;  // not reached: error throws
    } else if (c == '{') {
      const std::size_t close = fmt.find('}', i);
      if (close == std::string_view::npos) {
        error(i + 1 == fmt.size() ? BraceError::open_at_end : BraceError::unclosed_open);
        return;  // not reached: error throws
      }
      field(fmt.substr(i + 1, close - i - 1));
      i = close;
    } else {
      literal(c);
    }
  }
}

}  // namespace qsft
