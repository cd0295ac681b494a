// The syntax tree of a Jinja template (built by tokenizer/jinja_parser.h, walked by tokenizer/jinja_eval.cpp).
// Every node keeps its template line for errors.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace qsft::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    literal,      // value
    name,         // name
    attr,         // a.name
    item,         // a[b]
    slice,        // a[b:c:d] (absent parts are null)
    call,         // a(args, kwargs)
    filter,       // a | name(args, kwargs)
    test,         // a is [not] name(args)  (negated)
    neg,          // -a
    pos,          // +a
    not_,         // not a
    and_,         // a and b
    or_,          // a or b
    binary,       // a op b: + - * / // % ** ~
    compare,      // a op0 args[0] op1 args[1] ...: == != < > <= >= in, "not in" (ops)
    cond,         // b if a else c (c null: undefined)
    list,         // [args]
    tuple,        // (args)
    dict,         // {args[0]: args[1], ...}
    block_input,  // the body's text in {% filter %} and block {% set %}
  };
  Kind kind;
  int line;
  std::string name;  // name, attr, filter, test; binary: the operator
  Value value;       // literal
  bool negated = false;
  ExprPtr a, b, c, d;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // compare
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
  enum class Kind {
    text,        // text
    output,      // {{ expr }}
    if_,         // if conds[k]: bodies[k] ... else: else_body
    for_,        // for targets in expr [if cond] [recursive]: body else: else_body
    set,         // set targets = expr, or set targets[0].attr = expr
    set_block,   // set targets[0] [| filter]: body (filter applied to the body's text)
    macro,       // macro name(params) body
    call_block,  // call[(params)] expr: body (the body is the macro's caller())
    filter,      // filter expr: body
    break_,
    continue_,
    generation,  // generation: body (assistant output, trained)
    with,        // with targets = values: body
  };
  Kind kind;
  int line;
  std::string text;  // text; set: the attribute of a namespace (targets[0].text = expr); macro: name
  ExprPtr expr;      // output, for (iterable), set, call_block (the call), filter/set_block (filter chain)
  ExprPtr cond;      // for: the loop filter
  std::vector<std::string> targets;  // for, set, set_block, with
  std::vector<ExprPtr> conds;        // if; with: the values
  std::vector<Body> bodies;          // if
  Body body, else_body;
  bool recursive = false;  // for: loop(items) renders the loop again over items, one level deeper
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro, call_block: name and default (null: none)
};

}  // namespace qsft::jinja
