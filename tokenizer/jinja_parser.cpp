#include "tokenizer/jinja_parser.h"

#include <cstdlib>
#include <initializer_list>

#include "tokenizer/jinja_lexer.h"

namespace qsft::jinja {

namespace {

using T = Token::Type;
using EK = Expr::Kind;
using SK = Stmt::Kind;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  Body parse_template() {
    Body body = parse_body({});
    if (cur().type != T::eof) fail("unexpected '" + peek_name() + "'");
    return body;
  }

 private:
  const Token& cur() const { return toks_[pos_]; }
  const Token& next() { return toks_[pos_++]; }
  bool is_op(std::string_view op) const { return cur().type == T::op && cur().text == op; }
  bool is_name(std::string_view n) const { return cur().type == T::name && cur().text == n; }
  bool skip_op(std::string_view op) { return is_op(op) ? (++pos_, true) : false; }
  bool skip_name(std::string_view n) { return is_name(n) ? (++pos_, true) : false; }
  std::string peek_name() const { return toks_[pos_ + 1].text; }

  [[noreturn]] void fail(const std::string& what) const {
    throw TemplateError("chat template line " + std::to_string(cur().line) + ": " + what);
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) fail("expected '" + std::string(op) + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().type != T::name) fail("expected a name, got " + describe(cur()));
    return next().text;
  }
  void expect_block_end() {
    if (cur().type != T::block_end) fail("expected the end of the statement ('%}'), got " + describe(cur()));
    ++pos_;
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case T::eof: return "the end of the template";
      case T::block_end: return "'%}'";
      case T::var_end: return "'}}'";
      case T::string: return "a string";
      default: return "'" + t.text + "'";
    }
  }

  static ExprPtr node(EK kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // ---- statements ----

  // Statements until a block tag whose name is in ends (left unconsumed: the tag's "{%" and name are current).
  Body parse_body(std::initializer_list<std::string_view> ends) {
    if (ends.size()) open_.emplace_back(*(ends.end() - 1));
    Body body = parse_body_until(ends);
    if (ends.size()) open_.pop_back();
    return body;
  }

  Body parse_body_until(std::initializer_list<std::string_view> ends) {
    Body body;
    for (;;) {
      const Token& t = cur();
      if (t.type == T::eof) {
        if (ends.size()) fail("missing '{% " + std::string(*(ends.end() - 1)) + " %}' (the template ends first)");
        return body;
      }
      if (t.type == T::text) {
        auto s = std::make_unique<Stmt>();
        s->kind = SK::text;
        s->line = t.line;
        s->text = t.text;
        body.push_back(std::move(s));
        ++pos_;
      } else if (t.type == T::var_begin) {
        ++pos_;
        auto s = std::make_unique<Stmt>();
        s->kind = SK::output;
        s->line = t.line;
        s->expr = parse_tuple(true);
        if (cur().type != T::var_end) fail("expected '}}', got " + describe(cur()));
        ++pos_;
        body.push_back(std::move(s));
      } else {
        ++pos_;
        for (std::string_view e : ends)
          if (is_name(e)) return body;
        body.push_back(parse_statement());
      }
    }
  }

  // After a body: the end tag "{% name %}".
  void end_tag(std::string_view name) {
    if (!skip_name(name)) fail("expected '{% " + std::string(name) + " %}'");
    expect_block_end();
  }

  std::unique_ptr<Stmt> parse_statement() {
    auto s = std::make_unique<Stmt>();
    s->line = cur().line;
    if (cur().type != T::name) fail("expected a statement name, got " + describe(cur()));
    const std::string kw = next().text;
    if (kw == "if") {
      parse_if(*s);
    } else if (kw == "for") {
      parse_for(*s);
    } else if (kw == "set") {
      parse_set(*s);
    } else if (kw == "macro") {
      s->kind = SK::macro;
      s->text = expect_name();
      parse_params(*s);
      expect_block_end();
      s->body = parse_body({"endmacro"});
      end_tag("endmacro");
    } else if (kw == "call") {
      s->kind = SK::call_block;
      if (is_op("(")) parse_params(*s);
      s->expr = parse_expression(true);
      if (s->expr->kind != EK::call) fail("{% call %} needs a macro call");
      expect_block_end();
      s->body = parse_body({"endcall"});
      end_tag("endcall");
    } else if (kw == "filter") {
      s->kind = SK::filter;
      s->expr = parse_filters(node(EK::block_input, s->line), true);
      expect_block_end();
      s->body = parse_body({"endfilter"});
      end_tag("endfilter");
    } else if (kw == "generation") {
      s->kind = SK::generation;
      expect_block_end();
      s->body = parse_body({"endgeneration"});
      end_tag("endgeneration");
    } else if (kw == "with") {
      parse_with(*s);
    } else if (kw == "break" || kw == "continue") {
      if (loop_depth_ == 0) fail("'" + kw + "' outside a loop");
      s->kind = kw == "break" ? SK::break_ : SK::continue_;
      expect_block_end();
    } else if (kw.starts_with("end") || kw == "elif" || kw == "else") {
      fail("unexpected '{% " + kw + " %}'" + (open_.empty() ? "" : ", expected '{% " + open_.back() + " %}'"));
    } else {
      fail("'{% " + kw + " %}' is not supported");
    }
    return s;
  }

  void parse_if(Stmt& s) {
    s.kind = SK::if_;
    for (;;) {
      s.conds.push_back(parse_tuple(true));
      expect_block_end();
      s.bodies.push_back(parse_body({"elif", "else", "endif"}));
      const std::string tag = next().text;
      if (tag == "elif") continue;
      if (tag == "else") {
        expect_block_end();
        s.else_body = parse_body({"endif"});
        end_tag("endif");
      } else {
        expect_block_end();
      }
      return;
    }
  }

  void parse_for(Stmt& s) {
    s.kind = SK::for_;
    s.targets = parse_targets();
    if (!skip_name("in")) fail("expected 'in' after the loop variables");
    s.expr = parse_tuple(false);
    if (skip_name("if")) s.cond = parse_expression(true);
    if (is_name("recursive")) fail("recursive loops are not supported");
    expect_block_end();
    ++loop_depth_;
    s.body = parse_body({"else", "endfor"});
    --loop_depth_;
    if (next().text == "else") {
      expect_block_end();
      s.else_body = parse_body({"endfor"});
      end_tag("endfor");
    } else {
      expect_block_end();
    }
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    const bool paren = skip_op("(");
    do names.push_back(expect_name());
    while (skip_op(","));
    if (paren) expect_op(")");
    return names;
  }

  void parse_set(Stmt& s) {
    s.kind = SK::set;
    s.targets = parse_targets();
    if (s.targets.size() == 1 && skip_op(".")) s.text = expect_name();
    if (skip_op("=")) {
      s.expr = parse_tuple(true);
      expect_block_end();
      return;
    }
    if (s.targets.size() != 1 || !s.text.empty()) fail("a block {% set %} assigns one name");
    s.kind = SK::set_block;
    if (is_op("|")) s.expr = parse_filters(node(EK::block_input, s.line));
    expect_block_end();
    s.body = parse_body({"endset"});
    end_tag("endset");
  }

  void parse_with(Stmt& s) {
    s.kind = SK::with;
    while (cur().type != T::block_end) {
      if (!s.targets.empty()) expect_op(",");
      s.targets.push_back(expect_name());
      expect_op("=");
      s.conds.push_back(parse_expression(true));
    }
    expect_block_end();
    s.body = parse_body({"endwith"});
    end_tag("endwith");
  }

  void parse_params(Stmt& s) {
    expect_op("(");
    while (!skip_op(")")) {
      if (!s.params.empty()) expect_op(",");
      std::string name = expect_name();
      ExprPtr def = skip_op("=") ? parse_expression(true) : nullptr;
      s.params.emplace_back(std::move(name), std::move(def));
    }
  }

  // ---- expressions (jinja2's precedence, loosest first) ----

  // expr ("," expr)*: a tuple when there is a comma.
  ExprPtr parse_tuple(bool with_cond) {
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

  ExprPtr parse_expression(bool with_cond) { return with_cond ? parse_cond() : parse_or(); }

  ExprPtr parse_cond() {
    ExprPtr e = parse_or();
    while (is_name("if")) {
      auto c = node(EK::cond, next().line);
      c->a = parse_or();
      c->b = std::move(e);
      if (skip_name("else")) c->c = parse_cond();
      e = std::move(c);
    }
    return e;
  }

  ExprPtr binary(EK kind, ExprPtr&& a, ExprPtr&& b, int line, std::string op = {}) {
    auto e = node(kind, line);
    e->a = std::move(a);
    e->b = std::move(b);
    e->name = std::move(op);
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) e = binary(EK::or_, std::move(e), (next(), parse_and()), e->line);
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) e = binary(EK::and_, std::move(e), (next(), parse_not()), e->line);
    return e;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      auto e = node(EK::not_, next().line);
      e->a = parse_not();
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    ExprPtr e = parse_math1();
    ExprPtr cmp;
    for (;;) {
      std::string op;
      if (cur().type == T::op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                  cur().text == ">" || cur().text == "<=" || cur().text == ">=")) {
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

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = next().text;
      e = binary(EK::binary, std::move(e), parse_concat(), e->line, op);
    }
    return e;
  }

  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (skip_op("~")) e = binary(EK::binary, std::move(e), parse_math2(), e->line, "~");
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = next().text;
      e = binary(EK::binary, std::move(e), parse_pow(), e->line, op);
    }
    return e;
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (skip_op("**")) e = binary(EK::binary, std::move(e), parse_unary(true), e->line, "**");
    return e;
  }

  ExprPtr parse_unary(bool with_filter) {
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

  ExprPtr parse_primary() {
    const Token& t = cur();
    const int line = t.line;
    if (t.type == T::name) {
      ++pos_;
      auto e = node(EK::literal, line);
      if (t.text == "true" || t.text == "True") e->value = Value::boolean(true);
      else if (t.text == "false" || t.text == "False") e->value = Value::boolean(false);
      else if (t.text == "none" || t.text == "None") e->value = Value::none();
      else e->kind = EK::name, e->name = t.text;
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
      e->value = t.type == T::integer ? Value::integer(std::strtoll(t.text.c_str(), nullptr, 10))
                                      : Value::floating(std::strtod(t.text.c_str(), nullptr));
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

  ExprPtr parse_postfix(ExprPtr e) {
    for (;;) {
      const int line = cur().line;
      if (skip_op(".")) {
        if (cur().type == T::integer) {
          auto i = node(EK::item, line);
          i->a = std::move(e);
          i->b = node(EK::literal, line);
          i->b->value = Value::integer(std::strtoll(next().text.c_str(), nullptr, 10));
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

  ExprPtr parse_subscript(ExprPtr target, int line) {
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

  void parse_call_args(Expr& call) {
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

  // e (| filter)* (is test)*, as jinja2's parse_filter_expr; first_bare: the first filter has no "|" ({% filter %}).
  ExprPtr parse_filters(ExprPtr e, bool first_bare = false) {
    for (bool bare = first_bare;; bare = false) {
      const int line = cur().line;
      if (bare || skip_op("|")) {
        auto f = node(EK::filter, line);
        f->a = std::move(e);
        f->name = dotted_name();
        if (is_op("(")) parse_call_args(*f);
        e = std::move(f);
      } else if (skip_name("is")) {
        auto t = node(EK::test, line);
        t->a = std::move(e);
        t->negated = skip_name("not");
        t->name = dotted_name();
        if (is_op("(")) {
          parse_call_args(*t);
        } else if ((cur().type == T::name && cur().text != "else" && cur().text != "or" && cur().text != "and") ||
                   cur().type == T::string || cur().type == T::integer || cur().type == T::floating ||
                   is_op("[") || is_op("{") || is_op("(")) {
          t->args.push_back(parse_postfix(parse_primary()));
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

  std::string dotted_name() {
    std::string n = expect_name();
    while (skip_op(".")) n += "." + expect_name();
    return n;
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int loop_depth_ = 0;
  std::vector<std::string> open_;  // the end tag of each statement being parsed, innermost last
};

}  // namespace

Body parse(std::string_view source) { return Parser(lex(source)).parse_template(); }

}  // namespace qsft::jinja
