// The expression half of the Jinja parser (tokenizer/jinja_parser.cpp parses the statements on top of it): a
// cursor over the lexer's tokens with the helpers both halves use, and jinja2's expression grammar. Internal to
// tokenizer/jinja_*.cpp.
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_lexer.h"

namespace qsft::jinja {

class ExprParser {
 public:
  explicit ExprParser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

 protected:
  const Token& cur() const { return toks_[pos_]; }
  const Token& next() { return toks_[pos_++]; }
  bool is_op(std::string_view op) const { return cur().type == Token::Type::op && cur().text == op; }
  bool is_name(std::string_view n) const { return cur().type == Token::Type::name && cur().text == n; }
  bool skip_op(std::string_view op) { return is_op(op) ? (++pos_, true) : false; }
  bool skip_name(std::string_view n) { return is_name(n) ? (++pos_, true) : false; }

  [[noreturn]] void fail(const std::string& what) const {
    throw TemplateError("chat template line " + std::to_string(cur().line) + ": " + what);
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) fail("expected '" + std::string(op) + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().type != Token::Type::name) fail("expected a name, got " + describe(cur()));
    return next().text;
  }
  void expect_block_end() {
    if (cur().type != Token::Type::block_end) fail("expected the end of the statement ('%}'), got " + describe(cur()));
    ++pos_;
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case Token::Type::eof: return "the end of the template";
      case Token::Type::block_end: return "'%}'";
      case Token::Type::var_end: return "'}}'";
      case Token::Type::string: return "a string";
      default: return "'" + t.text + "'";
    }
  }

  static ExprPtr node(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // expr ("," expr)*: a tuple when there is a comma. with_cond: "b if a else c" allowed (not in a for's iterable).
  ExprPtr parse_tuple(bool with_cond);
  ExprPtr parse_expression(bool with_cond);
  // e (| filter)* (is test)*, as jinja2's parse_filter_expr; first_bare: the first filter has no "|" ({% filter %}).
  ExprPtr parse_filters(ExprPtr e, bool first_bare = false);

  std::vector<Token> toks_;
  size_t pos_ = 0;
  // jinja2 checks filter and test names when it compiles, except in "soft frames" (an if's condition and branches,
  // a conditional expression), where an unknown one fails only when it runs: unknown_ holds (line, error) of those
  // seen outside them, for the parser to report.
  bool soft_ = false;
  std::vector<std::pair<int, std::string>> unknown_;

 private:
  ExprPtr parse_cond();
  ExprPtr binary(Expr::Kind kind, ExprPtr&& a, ExprPtr&& b, int line, std::string op = {});
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  ExprPtr parse_math1();
  ExprPtr parse_concat();
  ExprPtr parse_math2();
  ExprPtr parse_pow();
  ExprPtr parse_unary(bool with_filter);
  ExprPtr parse_primary();
  ExprPtr parse_postfix(ExprPtr e);
  ExprPtr parse_subscript(ExprPtr target, int line);
  void parse_call_args(Expr& call);
  std::string dotted_name();
};

}  // namespace qsft::jinja
