// The Jinja lexer: template source to tokens, with Hugging Face's whitespace settings applied as jinja2 applies
// them: trim_blocks (the first newline after a block or comment tag is removed), lstrip_blocks (spaces and tabs
// from the start of a line to a block or comment tag are removed), "-" on a tag (all whitespace on that side is
// removed), "+" (neither setting applies on that side). Line endings become "\n" and one trailing newline of
// the template is dropped (keep_trailing_newline=False). Comments vanish; {% raw %} blocks become text.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace qsft::jinja {

struct Token {
  enum class Type { text, var_begin, var_end, block_begin, block_end, name, string, integer, floating, op, eof };
  Type type;
  std::string text;  // text: the output text; string: the decoded value; op: the operator; name/number: as written
  int line;          // 1-based line of the template where the token starts
};

// TemplateError "chat template line N: ..." for what it cannot read (an unclosed tag, a stray character).
std::vector<Token> lex(std::string_view source);

}  // namespace qsft::jinja
