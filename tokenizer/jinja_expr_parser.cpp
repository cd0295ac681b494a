// The expression half of the Jinja parser (tokenizer/jinja_expr_parser.h), with jinja2's operator precedence,
// loosest first: conditional, or, and, not, comparisons (chained; in, not in), + -, ~, * / // %, **, unary - +,
// then postfix (.attr, [item], [slice], call) and filters/tests.
#include "tokenizer/jinja_expr_parser.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "tokenizer/jinja_builtins.h"

namespace qsft::jinja {

using T = Token::Type;
using EK = Expr::Kind;

ExprPtr ExprParser::parse_tuple(bool with_cond) {
  const int line = cur().line;
  ExprPtr first = parse_expression(with_cond);
  if (!is_op(",")) return first;
  auto t = node(EK::tuple, line);
  t->args.push_back(std::move(first));
  while (skip_op(",")) {
    if (cur().type == T::block_end || cur().type == T::var_end || is_op(")")) break;
    t->args.push_back(parse_expression(with_cond));
  }
  return t;
}

namespace {

// An integer literal (the lexer dropped its '_'s); beyond int64 its digits as a big integer (printed, not computed
// with).
Value integer_literal(std::string text) {
  errno = 0;
  const long long v = std::strtoll(text.c_str(), nullptr, 10);
  if (errno != ERANGE) return Value::integer(v);
  text.erase(0, std::min(text.find_first_not_of('0'), text.size() - 1));
  return Value::big_integer(std::move(text));
}

}  // namespace

ExprPtr ExprParser::parse_expression(bool with_cond) { return with_cond ? parse_cond() : parse_or(); }

ExprPtr ExprParser::parse_cond() {
  const size_t known = unknown_.size();
  const bool outer = soft_;
  ExprPtr e = parse_or();
  if (is_name("if")) {
    soft_ = true;
    unknown_.resize(known);  // b's names: b in "b if a else c" is in the conditional's soft frame
  }
  while (is_name("if")) {
    auto c = node(EK::cond, next().line);
    c->a = parse_or();
    c->b = std::move(e);
    if (skip_name("else")) c->c = parse_cond();
    e = std::move(c);
  }
  soft_ = outer;
  return e;
}

ExprPtr ExprParser::binary(EK kind, ExprPtr&& a, ExprPtr&& b, int line, std::string op) {
  auto e = node(kind, line);
  e->a = std::move(a);
  e->b = std::move(b);
  e->name = std::move(op);
  return e;
}

ExprPtr ExprParser::parse_or() {
  ExprPtr e = parse_and();
  while (is_name("or")) e = binary(EK::or_, std::move(e), (next(), parse_and()), e->line);
  return e;
}

ExprPtr ExprParser::parse_and() {
  ExprPtr e = parse_not();
  while (is_name("and")) e = binary(EK::and_, std::move(e), (next(), parse_not()), e->line);
  return e;
}

ExprPtr ExprParser::parse_not() {
  if (is_name("not")) {
    auto e = node(EK::not_, next().line);
    e->a = parse_not();
    return e;
  }
  return parse_compare();
}

ExprPtr ExprParser::parse_compare() {
  ExprPtr e = parse_math1();
  ExprPtr cmp;
  for (;;) {
    std::string op;
    if (cur().type == T::op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == ">" ||
                                cur().text == "<=" || cur().text == ">=")) {
      op = next().text;
    } else if (is_name("in")) {
      op = next().text;
    } else if (is_name("not") && toks_[pos_ + 1].type == T::name && toks_[pos_ + 1].text == "in") {
      pos_ += 2;
      op = "not in";
    } else {
      break;
    }
    if (!cmp) {
      cmp = node(EK::compare, e->line);
      cmp->a = std::move(e);
    }
    cmp->ops.push_back(op);
    cmp->args.push_back(parse_math1());
  }
  return cmp ? std::move(cmp) : std::move(e);
}

ExprPtr ExprParser::parse_math1() {
  ExprPtr e = parse_concat();
  while (is_op("+") || is_op("-")) {
    std::string op = next().text;
    e = binary(EK::binary, std::move(e), parse_concat(), e->line, op);
  }
  return e;
}

ExprPtr ExprParser::parse_concat() {
  ExprPtr e = parse_math2();
  while (skip_op("~")) e = binary(EK::binary, std::move(e), parse_math2(), e->line, "~");
  return e;
}

ExprPtr ExprParser::parse_math2() {
  ExprPtr e = parse_pow();
  while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
    std::string op = next().text;
    e = binary(EK::binary, std::move(e), parse_pow(), e->line, op);
  }
  return e;
}

ExprPtr ExprParser::parse_pow() {
  ExprPtr e = parse_unary(true);
  while (skip_op("**")) e = binary(EK::binary, std::move(e), parse_unary(true), e->line, "**");
  return e;
}

ExprPtr ExprParser::parse_unary(bool with_filter) {
  ExprPtr e;
  if (is_op("-") || is_op("+")) {
    const EK kind = cur().text == "-" ? EK::neg : EK::pos;
    e = node(kind, next().line);
    e->a = parse_unary(false);
  } else {
    e = parse_primary();
  }
  e = parse_postfix(std::move(e));
  return with_filter ? parse_filters(std::move(e)) : std::move(e);
}

ExprPtr ExprParser::parse_primary() {
  const Token& t = cur();
  const int line = t.line;
  if (t.type == T::name) {
    ++pos_;
    auto e = node(EK::literal, line);
    if (t.text == "true" || t.text == "True")
      e->value = Value::boolean(true);
    else if (t.text == "false" || t.text == "False")
      e->value = Value::boolean(false);
    else if (t.text == "none" || t.text == "None")
      e->value = Value::none();
    else
      e->kind = EK::name, e->name = t.text;
    return e;
  }
  if (t.type == T::string) {
    std::string s;
    while (cur().type == T::string) s += next().text;
    auto e = node(EK::literal, line);
    e->value = Value::string(std::move(s));
    return e;
  }
  if (t.type == T::integer || t.type == T::floating) {
    ++pos_;
    auto e = node(EK::literal, line);
    e->value = t.type == T::integer ? integer_literal(t.text) : Value::floating(std::strtod(t.text.c_str(), nullptr));
    return e;
  }
  if (skip_op("(")) {
    if (skip_op(")")) return node(EK::tuple, line);
    ExprPtr e = parse_tuple(true);
    expect_op(")");
    return e;
  }
  if (is_op("[") || is_op("{")) {  // [items] or {key: value, ...}
    const bool is_dict = next().text == "{";
    const std::string_view close = is_dict ? "}" : "]";
    auto e = node(is_dict ? EK::dict : EK::list, line);
    while (!skip_op(close)) {
      if (!e->args.empty()) expect_op(",");
      if (skip_op(close)) break;
      e->args.push_back(parse_expression(true));
      if (!is_dict) continue;
      expect_op(":");
      e->args.push_back(parse_expression(true));
    }
    return e;
  }
  fail("unexpected " + describe(t));
}

ExprPtr ExprParser::parse_postfix(ExprPtr e) {
  for (;;) {
    const int line = cur().line;
    if (skip_op(".")) {
      if (cur().type == T::integer) {
        auto i = node(EK::item, line);
        i->a = std::move(e);
        i->b = node(EK::literal, line);
        i->b->value = integer_literal(next().text);
        e = std::move(i);
      } else {
        auto a = node(EK::attr, line);
        a->a = std::move(e);
        a->name = expect_name();
        e = std::move(a);
      }
    } else if (skip_op("[")) {
      e = parse_subscript(std::move(e), line);
    } else if (is_op("(")) {
      auto c = node(EK::call, line);
      c->a = std::move(e);
      parse_call_args(*c);
      e = std::move(c);
    } else {
      return e;
    }
  }
}

ExprPtr ExprParser::parse_subscript(ExprPtr target, int line) {
  ExprPtr parts[3];
  int part = 0;
  bool is_slice = false;
  while (!is_op("]")) {
    if (skip_op(":")) {
      if (++part > 2) fail("a slice has at most three parts");
      is_slice = true;
      continue;
    }
    if (parts[part]) fail("expected ':' or ']' in the subscript");
    parts[part] = parse_expression(true);
  }
  ++pos_;
  auto e = node(is_slice ? EK::slice : EK::item, line);
  e->a = std::move(target);
  if (!is_slice && !parts[0]) fail("empty subscript");
  e->b = std::move(parts[0]);
  e->c = std::move(parts[1]);
  e->d = std::move(parts[2]);
  return e;
}

void ExprParser::parse_call_args(Expr& call) {
  expect_op("(");
  while (!skip_op(")")) {
    if (!call.args.empty() || !call.kwargs.empty()) expect_op(",");
    if (skip_op(")")) break;
    if (is_op("*") || is_op("**")) fail("*args and **kwargs in calls are not supported");
    if (cur().type == T::name && toks_[pos_ + 1].type == T::op && toks_[pos_ + 1].text == "=") {
      std::string name = next().text;
      ++pos_;
      call.kwargs.emplace_back(std::move(name), parse_expression(true));
    } else {
      if (!call.kwargs.empty()) fail("a positional argument follows a keyword argument");
      call.args.push_back(parse_expression(true));
    }
  }
}

ExprPtr ExprParser::parse_filters(ExprPtr e, bool first_bare) {
  for (bool bare = first_bare;; bare = false) {
    const int line = cur().line;
    if (bare || skip_op("|")) {
      auto f = node(EK::filter, line);
      f->a = std::move(e);
      f->name = dotted_name();
      if (!jinja2_has_filter(f->name) && !soft_)
        unknown_.emplace_back(line, "filter '" + f->name + "' is not supported");
      if (is_op("(")) parse_call_args(*f);
      e = std::move(f);
    } else if (skip_name("is")) {
      auto t = node(EK::test, line);
      t->a = std::move(e);
      t->negated = skip_name("not");
      t->name = dotted_name();
      if (!has_test(t->name) && !soft_) unknown_.emplace_back(line, "test '" + t->name + "' is not supported");
      if (is_op("(")) {
        parse_call_args(*t);
      } else if ((cur().type == T::name && cur().text != "else" && cur().text != "or" && cur().text != "and") ||
                 cur().type == T::string || cur().type == T::integer || cur().type == T::floating || is_op("[") ||
                 is_op("{") || is_op("(")) {
        t->args.push_back(parse_postfix(parse_primary()));
      }
      e = std::move(t);
    } else {
      return e;
    }
  }
}

std::string ExprParser::dotted_name() {
  std::string n = expect_name();
  while (skip_op(".")) n += "." + expect_name();
  return n;
}

}  // namespace qsft::jinja
