// The arithmetic operators of the Jinja engine with Python's semantics (declared in tokenizer/jinja_builtins.h):
// int op int stays int (but / is true division), // and % floor towards negative infinity, str and list
// concatenation and repetition, ~ joins str() of both sides.
#include <cmath>

#include "tokenizer/jinja_builtins.h"

namespace qsft::jinja {

namespace {

using Kind = Value::Kind;

int64_t int_of(const Value& v) { return v.kind == Kind::boolean ? v.b : v.i; }

[[noreturn]] void unsupported(std::string_view op, const Value& a, const Value& b) {
  if (a.kind == Value::Kind::big_integer || b.kind == Value::Kind::big_integer)
    throw TemplateError("an integer beyond 64 bits in " + std::string(op) +
                        ": the template engine prints them, does not compute with them");
  throw TemplateError("unsupported operand type(s) for " + std::string(op) + ": '" + type_name(a) + "' and '" +
                      type_name(b) + "'");
}

Value repeat(const Value& seq, int64_t n) {
  if (seq.is_string()) {
    std::string out;
    for (int64_t k = 0; k < n; ++k) out += seq.s;
    Value r = Value::string(std::move(out));
    r.is_markup = seq.is_markup;
    return r;
  }
  List out;
  for (int64_t k = 0; k < n; ++k) out.insert(out.end(), seq.l->begin(), seq.l->end());
  return Value::list(std::move(out), seq.is_tuple);
}

Value arithmetic(std::string_view op, const Value& a, const Value& b) {
  const bool ints = a.is_integer() && b.is_integer();
  if (ints) {
    const int64_t x = int_of(a), y = int_of(b);
    int64_t r = 1;
    // Python's ints have no bound; this engine's are 64-bit: a result beyond them is an error, never a wrapped value
    bool overflow = false;
    if (op == "+") overflow = __builtin_add_overflow(x, y, &r);
    if (op == "-") overflow = __builtin_sub_overflow(x, y, &r);
    if (op == "*") overflow = __builtin_mul_overflow(x, y, &r);
    if (op == "**" && y >= 0) {
      if (x >= -1 && x <= 1)  // 0, 1, -1: no loop of y steps
        r = x == 0 ? y == 0 : x == 1 ? 1 : y % 2 ? -1 : 1;
      else  // |x| >= 2 overflows within 63 steps
        for (int64_t k = 0; k < y && !overflow; ++k) overflow = __builtin_mul_overflow(r, x, &r);
    }
    if (overflow)
      throw TemplateError("integer overflow in " + std::to_string(x) + " " + std::string(op) + " " + std::to_string(y) +
                          ": the template engine's integers are 64-bit");
    if (op == "+" || op == "-" || op == "*" || (op == "**" && y >= 0)) return Value::integer(r);
    if ((op == "//" || op == "%") && y == 0) throw TemplateError("integer division or modulo by zero");
    if (op == "//") return Value::integer(x / y - ((x % y != 0) && ((x < 0) != (y < 0))));
    if (op == "%") {
      int64_t r = x % y;
      return Value::integer(r != 0 && ((r < 0) != (y < 0)) ? r + y : r);
    }
  }
  const double x = a.as_double(), y = b.as_double();
  if (op == "+") return Value::floating(x + y);
  if (op == "-") return Value::floating(x - y);
  if (op == "*") return Value::floating(x * y);
  if (op == "**") return Value::floating(std::pow(x, y));
  if (y == 0) throw TemplateError("division by zero");
  if (op == "/") return Value::floating(x / y);
  if (op == "//") return Value::floating(std::floor(x / y));
  double r = std::fmod(x, y);
  if (r != 0 && ((r < 0) != (y < 0))) r += y;
  return Value::floating(r);
}

}  // namespace

Value binary_op(std::string_view op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string out = str(a);
    append_str(out, b);
    return Value::string(std::move(out));
  }
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  if (a.is_number() && b.is_number()) return arithmetic(op, a, b);
  if (op == "+") {
    if (a.is_string() && b.is_string() && (a.is_markup || b.is_markup)) {  // Markup escapes the str it meets
      return Value::markup(pystr::escape_arg(a, false).s + pystr::escape_arg(b, false).s);
    }
    if (a.is_string() && b.is_string()) return Value::string(a.s + b.s);
    if (a.is_list() && b.is_list() && a.is_tuple == b.is_tuple) {
      List out = *a.l;
      out.insert(out.end(), b.l->begin(), b.l->end());
      return Value::list(std::move(out), a.is_tuple);
    }
  }
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && b.is_integer()) return repeat(a, int_of(b));
    if (a.is_integer() && (b.is_string() || b.is_list())) return repeat(b, int_of(a));
  }
  if (op == "%" && a.is_string()) return pystr::percent_value(a, b);
  unsupported(op, a, b);
}

}  // namespace qsft::jinja
