// The tests of the Jinja engine (`x is name(args)`), as jinja2 defines them (declared in
// tokenizer/jinja_builtins.h).
#include <algorithm>
#include <iterator>

#include "tokenizer/jinja_builtins.h"

namespace qsft::jinja {

namespace {

using Kind = Value::Kind;

const Value& arg(const CallArgs& args, std::string_view test) {
  if (args.pos.empty()) throw TemplateError("test '" + std::string(test) + "' needs an argument");
  return args.pos[0];
}

bool compare(std::string_view name, const Value& x, const CallArgs& args, bool& result) {
  if (name == "eq" || name == "equalto" || name == "==")
    result = equal(x, arg(args, name));
  else if (name == "ne" || name == "!=")
    result = !equal(x, arg(args, name));
  else if (name == "lt" || name == "lessthan" || name == "<")
    result = less(x, arg(args, name));
  else if (name == "gt" || name == "greaterthan" || name == ">")
    result = less(arg(args, name), x);
  else if (name == "le" || name == "<=")
    result = !less(arg(args, name), x);
  else if (name == "ge" || name == ">=")
    result = !less(x, arg(args, name));
  else
    return false;
  return true;
}

int64_t integer_of(const Value& x, std::string_view test) {
  if (!x.is_integer()) throw TemplateError("test '" + std::string(test) + "' needs an integer, got " + type_name(x));
  return x.kind == Kind::boolean ? x.b : x.i;
}

}  // namespace

bool has_test(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "eq",    "equalto", "ne",        "lt",          "lessthan", "gt",       "greaterthan", "le",
      "ge",    "defined", "undefined", "none",        "boolean",  "true",     "false",       "integer",
      "float", "number",  "string",    "mapping",     "iterable", "sequence", "callable",    "sameas",
      "in",    "odd",     "even",      "divisibleby", "lower",    "upper",    "escaped",     "filter",
      "test",  "==",      "!=",        "<",           "<=",       ">",        ">="};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

bool call_test(std::string_view name, const Value& x, CallArgs& args) {
  bool r;
  if (compare(name, x, args, r)) return r;
  if (name == "defined") return !x.is_undefined();
  if (name == "undefined") return x.is_undefined();
  if (name == "none") return x.is_none();
  if (name == "boolean") return x.kind == Kind::boolean;
  if (name == "true") return x.kind == Kind::boolean && x.b;
  if (name == "false") return x.kind == Kind::boolean && !x.b;
  if (name == "integer") return x.kind == Kind::integer || x.kind == Kind::big_integer;
  if (name == "float") return x.kind == Kind::floating;
  if (name == "number") return x.is_number() || x.kind == Kind::big_integer;
  if (name == "string") return x.is_string();
  if (name == "mapping") return x.is_dict() && !x.is_namespace;
  if (name == "iterable")
    return x.is_undefined() || x.is_string() || x.is_list() || x.kind == Kind::generator || x.is_dict();
  if (name == "sequence") return x.is_undefined() || x.is_string() || x.is_list() || (x.is_dict() && !x.is_namespace);
  if (name == "callable") return x.kind == Kind::function;
  if (name == "sameas") {
    const Value& y = arg(args, name);
    if (x.kind != y.kind) return false;
    if (x.is_list() || x.kind == Kind::generator) return x.l == y.l;
    if (x.is_dict()) return x.d == y.d;
    return (x.is_none() || x.kind == Kind::boolean) && equal(x, y);
  }
  if (name == "in") return contains(arg(args, name), x);
  if (name == "odd") return integer_of(x, name) % 2 != 0;
  if (name == "even") return integer_of(x, name) % 2 == 0;
  if (name == "divisibleby") return integer_of(x, name) % integer_of(arg(args, name), name) == 0;
  if (name == "lower") return pystr::is_lower(str(x));
  if (name == "upper") return pystr::is_upper(str(x));
  if (name == "escaped") return x.is_markup;
  if (name == "filter") return x.is_string() && jinja2_has_filter(x.s);
  if (name == "test") return x.is_string() && has_test(x.s);
  throw TemplateError("test '" + std::string(name) + "' is not supported");
}

}  // namespace qsft::jinja
