// The values of the Jinja engine (tokenizer/jinja_template.h), with Python's semantics as jinja2 gives them to
// Hugging Face chat templates: undefined (jinja2's default Undefined: renders empty, is falsy, iterates as empty,
// fails on attribute access and arithmetic), None, bool, int, float, str (UTF-8; lengths, indices and slices
// count code points), list (tuples too), dict (insertion order, any value as key), callables (macros,
// builtins, bound methods) and generator: the lazy result of map, select, reject, selectattr, rejectattr, unique
// and items, and reverse of a list (jinja2 yields them): it iterates its items and is true even when empty; it has
// no len(), no JSON form, no last item, and indexing or slicing it gives undefined. (A Python generator is used up
// by one iteration; here a second one sees the items again.) Lists, generators and dicts are shared by reference,
// as Python objects are.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/base/error.h"

namespace qsft::jinja {

struct Value;
struct CallArgs;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<Value, Value>>;  // few keys each: a linear search is faster than hashing
using Function = std::function<Value(CallArgs&)>;

// A template error: the message names the template line ("chat template line 12: ...").
struct TemplateError : InputError {
  using InputError::InputError;
};

struct Value {
  enum class Kind : uint8_t {
    undefined,
    none,
    boolean,
    integer,
    big_integer,
    floating,
    string,
    list,
    generator,
    dict,
    function
  };
  Kind kind = Kind::undefined;
  bool is_tuple = false;      // list: a tuple (prints with parentheses)
  bool is_namespace = false;  // dict: a namespace() (attributes may be assigned)
  bool is_markup = false;     // string: markupsafe's Markup (from safe or escape): a str added to it is escaped
  bool is_group = false;      // tuple: groupby's (grouper, list), which also has those two attributes
  union {
    bool b;
    int64_t i;
    double f;
  };
  std::string s;  // string; big_integer: its digits; undefined: the error message of using it
  std::shared_ptr<List> l;  // list, generator
  std::shared_ptr<Dict> d;
  std::shared_ptr<Function> fn;

  Value() : i(0) {}
  // why: jinja2's message for using it ("'x' is undefined", "'dict object' has no attribute 'y'").
  static Value undefined(std::string why = "value is undefined") {
    Value v;
    v.s = std::move(why);
    return v;
  }
  static Value none() { return of(Kind::none); }
  static Value boolean(bool x) {
    Value v = of(Kind::boolean);
    v.b = x;
    return v;
  }
  static Value integer(int64_t x) {
    Value v = of(Kind::integer);
    v.i = x;
    return v;
  }
  static Value big_integer(std::string digits) {  // an int beyond int64: its decimal digits (sign first)
    Value v = of(Kind::big_integer);
    v.s = std::move(digits);
    return v;
  }
  static Value floating(double x) {
    Value v = of(Kind::floating);
    v.f = x;
    return v;
  }
  static Value string(std::string x) {
    Value v = of(Kind::string);
    v.s = std::move(x);
    return v;
  }
  static Value markup(std::string x) {
    Value v = string(std::move(x));
    v.is_markup = true;
    return v;
  }
  static Value list(List x = {}, bool tuple = false) {
    Value v = of(Kind::list);
    v.l = std::make_shared<List>(std::move(x));
    v.is_tuple = tuple;
    return v;
  }
  static Value generator(List x = {}) {
    Value v = of(Kind::generator);
    v.l = std::make_shared<List>(std::move(x));
    return v;
  }
  static Value dict(Dict x = {}) {
    Value v = of(Kind::dict);
    v.d = std::make_shared<Dict>(std::move(x));
    return v;
  }
  static Value function(Function f) {
    Value v = of(Kind::function);
    v.fn = std::make_shared<Function>(std::move(f));
    return v;
  }
  // The JSON text as a value (objects keep their key order; integers beyond int64 keep their digits).
  static Value from_json(std::string_view json, const std::string& where);

  bool is_undefined() const { return kind == Kind::undefined; }
  bool is_none() const { return kind == Kind::none; }
  bool is_string() const { return kind == Kind::string; }
  bool is_list() const { return kind == Kind::list; }
  bool is_dict() const { return kind == Kind::dict; }
  bool is_number() const { return kind == Kind::integer || kind == Kind::floating || kind == Kind::boolean; }
  bool is_integer() const { return kind == Kind::integer || kind == Kind::boolean; }

  bool truthy() const;
  double as_double() const;  // numbers only
  // dict: the value of key (nullptr when absent).
  const Value* find(const Value& key) const;
  Value* find(const Value& key);
  const Value* find(std::string_view key) const;
  void set(const Value& key, Value v);  // dict: replaces or appends

 private:
  static Value of(Kind k) {
    Value v;
    v.kind = k;
    return v;
  }
};

// Arguments of a call: positional, then keyword.
struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  // The keyword argument name, else positional argument index, else nullptr.
  const Value* get(size_t index, std::string_view name) const;
};

// Python's == (1 == 1.0 == True, lists and dicts compared by value, undefined equals only undefined).
bool equal(const Value& a, const Value& b);
// Python's <: numbers with numbers, strings by code point, lists element-wise; TemplateError otherwise.
bool less(const Value& a, const Value& b);

// str(v) as jinja2 prints it ({{ v }}): undefined is empty, None "None", floats as repr, containers as repr.
void append_str(std::string& out, const Value& v);
std::string str(const Value& v);
// repr(v): strings quoted as Python quotes them.
void append_repr(std::string& out, const Value& v);
// json.dumps(v, ensure_ascii=False, indent=indent, separators=(item_sep, key_sep), sort_keys=sort_keys); indent < 0
// is None. TemplateError for what JSON cannot hold (undefined, callables).
struct JsonStyle {
  int indent = -1;
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool sort_keys = false;
};
void append_json(std::string& out, const Value& v, const JsonStyle& style, int depth = 0);

std::string type_name(const Value& v);  // Python's name of v's type, for errors

}  // namespace qsft::jinja
