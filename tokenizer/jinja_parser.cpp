#include "tokenizer/jinja_parser.h"

#include <initializer_list>

#include "tokenizer/jinja_expr_parser.h"

namespace qsft::jinja {

namespace {

using T = Token::Type;
using EK = Expr::Kind;
using SK = Stmt::Kind;

class Parser : ExprParser {
 public:
  explicit Parser(std::vector<Token> tokens) : ExprParser(std::move(tokens)) {}

  Body parse_template() {
    Body body = parse_body({});
    if (!unknown_.empty())
      throw TemplateError("chat template line " + std::to_string(unknown_[0].first) + ": " + unknown_[0].second);
    return body;
  }

 private:
  // Statements until a block tag whose name is in ends (left unconsumed: the tag's "{%" and name are current).
  // soft: the body is an if's branch (jinja2's soft frame); any other statement's body is a frame of its own.
  Body parse_body(std::initializer_list<std::string_view> ends, bool soft = false) {
    const bool outer = soft_;
    soft_ = soft;
    if (ends.size()) open_.emplace_back(*(ends.end() - 1));
    Body body = parse_body_until(ends);
    if (ends.size()) open_.pop_back();
    soft_ = outer;
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
      const bool outer = soft_;
      soft_ = true;
      s.conds.push_back(parse_tuple(true));
      soft_ = outer;
      expect_block_end();
      s.bodies.push_back(parse_body({"elif", "else", "endif"}, true));
      const std::string tag = next().text;
      if (tag == "elif") continue;
      if (tag == "else") {
        expect_block_end();
        s.else_body = parse_body({"endif"}, true);
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
    s.recursive = skip_name("recursive");
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

  int loop_depth_ = 0;
  std::vector<std::string> open_;  // the end tag of each statement being parsed, innermost last
};

}  // namespace

Body parse(std::string_view source) { return Parser(lex(source)).parse_template(); }

}  // namespace qsft::jinja
