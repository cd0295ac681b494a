// The Jinja evaluator: walks the syntax tree with jinja2's scoping (a for loop's body gets a fresh scope each
// iteration, so {% set %} inside a loop does not outlive the iteration — hence namespace(); if blocks share
// their enclosing scope; macros see the scope they were defined in) and writes the output text.
#include <algorithm>
#include <memory>
#include <optional>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_parser.h"
#include "tokenizer/jinja_template.h"

namespace qsft::jinja {

namespace {

using EK = Expr::Kind;
using SK = Stmt::Kind;
constexpr std::string_view kLinePrefix = "chat template line ";

struct Scope {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Scope> parent;

  const Value* lookup(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent.get())
      for (const auto& [k, v] : s->vars)
        if (k == name) return &v;
    return nullptr;
  }
  void set(const std::string& name, Value v) {
    for (auto& [k, old] : vars)
      if (k == name) {
        old = std::move(v);
        return;
      }
    vars.emplace_back(name, std::move(v));
  }
};
using ScopePtr = std::shared_ptr<Scope>;

ScopePtr child_of(const ScopePtr& parent) {
  auto s = std::make_shared<Scope>();
  s->parent = parent;
  return s;
}

enum class Flow { normal, break_, continue_ };

TemplateError at_line(int line, const TemplateError& e) {
  std::string_view what = e.what();
  if (what.substr(0, kLinePrefix.size()) == kLinePrefix) return e;
  return TemplateError(std::string(kLinePrefix) + std::to_string(line) + ": " + std::string(what));
}

class Renderer {
 public:
  explicit Renderer(std::vector<std::pair<size_t, size_t>>* generation) : generation_(generation) {}

  std::string run(const Body& body, const Value& context) {
    auto root = std::make_shared<Scope>();
    if (!context.is_dict()) throw TemplateError("the template context must be a dict");
    for (const auto& [k, v] : *context.d)
      if (k.is_string()) root->vars.emplace_back(k.s, v);
    exec(body, child_of(root));
    return std::move(root_);
  }

 private:
  Flow exec(const Body& body, const ScopePtr& scope) {
    for (const auto& s : body) {
      Flow f;
      try {
        f = exec(*s, scope);
      } catch (const TemplateError& e) {
        throw at_line(s->line, e);
      }
      if (f != Flow::normal) return f;
    }
    return Flow::normal;
  }

  // What run() writes, as a string of its own.
  template <class Run>
  std::string capture_output(Run&& run) {
    std::string text;
    std::string* saved = out_;
    out_ = &text;
    try {
      run();
    } catch (...) {
      out_ = saved;
      throw;
    }
    out_ = saved;
    return text;
  }
  // The output of body, written to a string of its own.
  std::string capture(const Body& body, const ScopePtr& scope) {
    return capture_output([&] { exec(body, scope); });
  }

  Flow exec(const Stmt& s, const ScopePtr& scope) {
    switch (s.kind) {
      case SK::text: *out_ += s.text; return Flow::normal;
      case SK::output: append_str(*out_, eval(*s.expr, *scope)); return Flow::normal;
      case SK::if_:
        for (size_t k = 0; k < s.conds.size(); ++k)
          if (eval(*s.conds[k], *scope).truthy()) return exec(s.bodies[k], scope);
        return exec(s.else_body, scope);
      case SK::for_: return exec_for(s, scope);
      case SK::set: {
        Value v = eval(*s.expr, *scope);
        if (s.text.empty()) {
          bind(*scope, s.targets, v);
        } else {
          const Value* ns = scope->lookup(s.targets[0]);
          if (!ns || !ns->is_dict() || !ns->is_namespace)
            throw TemplateError("cannot assign attribute on non-namespace object '" + s.targets[0] + "'");
          const_cast<Value*>(ns)->set(Value::string(s.text), std::move(v));
        }
        return Flow::normal;
      }
      case SK::set_block: {
        Value text = Value::string(capture(s.body, child_of(scope)));
        scope->set(s.targets[0], s.expr ? apply_block_filter(*s.expr, text, *scope) : text);
        return Flow::normal;
      }
      case SK::filter: {
        Value text = Value::string(capture(s.body, child_of(scope)));
        append_str(*out_, apply_block_filter(*s.expr, text, *scope));
        return Flow::normal;
      }
      case SK::macro: scope->set(s.text, make_macro(s, scope)); return Flow::normal;
      case SK::call_block: return exec_call_block(s, scope);
      case SK::generation: {
        const size_t begin = out_->size();
        Flow f = exec(s.body, scope);
        if (generation_ && out_ == &root_ && out_->size() > begin) generation_->emplace_back(begin, out_->size());
        return f;
      }
      case SK::with: {
        ScopePtr inner = child_of(scope);
        for (size_t k = 0; k < s.targets.size(); ++k) inner->set(s.targets[k], eval(*s.conds[k], *scope));
        return exec(s.body, inner);
      }
      case SK::break_: return Flow::break_;
      case SK::continue_: return Flow::continue_;
    }
    return Flow::normal;
  }

  static void bind(Scope& scope, const std::vector<std::string>& targets, const Value& v) {
    if (targets.size() == 1) {
      scope.set(targets[0], v);
      return;
    }
    List items = iterate(v);
    if (items.size() != targets.size())
      throw TemplateError("cannot unpack " + std::to_string(items.size()) + " values into " +
                          std::to_string(targets.size()) + " names");
    for (size_t k = 0; k < targets.size(); ++k) scope.set(targets[k], items[k]);
  }

  // last_changed: the arguments of the loop's latest loop.changed(...) call, shared by its iterations; depth: 1 for
  // the loop itself, one more per recursive loop(...) call; again: loop(...) of a recursive loop (else none).
  static Value loop_object(const List& items, size_t i, const std::shared_ptr<std::optional<Value>>& last_changed,
                           int64_t depth, const Value& again) {
    const auto n = static_cast<int64_t>(items.size()), k = static_cast<int64_t>(i);
    Value cycle = Value::function([k](CallArgs& a) {
      if (a.pos.empty()) throw TemplateError("no items for cycling given");
      return a.pos[static_cast<size_t>(k) % a.pos.size()];
    });
    Value changed = Value::function([last_changed](CallArgs& a) {
      Value now = Value::list(a.pos, true);
      if (*last_changed && equal(**last_changed, now)) return Value::boolean(false);
      *last_changed = std::move(now);
      return Value::boolean(true);
    });
    return Value::dict(
        {{Value::string("index"), Value::integer(k + 1)},
         {Value::string("index0"), Value::integer(k)},
         {Value::string("revindex"), Value::integer(n - k)},
         {Value::string("revindex0"), Value::integer(n - k - 1)},
         {Value::string("first"), Value::boolean(k == 0)},
         {Value::string("last"), Value::boolean(k == n - 1)},
         {Value::string("length"), Value::integer(n)},
         {Value::string("depth"), Value::integer(depth)},
         {Value::string("depth0"), Value::integer(depth - 1)},
         {Value::string("previtem"), k > 0 ? items[i - 1] : Value::undefined("there is no previous item")},
         {Value::string("nextitem"), k + 1 < n ? items[i + 1] : Value::undefined("there is no next item")},
         {Value::string("cycle"), cycle},
         {Value::string("changed"), changed},
         {Value::string("__call__"), again}});
  }

  Flow exec_for(const Stmt& s, const ScopePtr& scope) { return run_loop(s, scope, iterate(eval(*s.expr, *scope)), 1); }

  // The loop over items at depth; a recursive loop's loop(xs) renders it again over xs at depth + 1 (bounded as macro
  // calls are) and gives that text.
  Flow run_loop(const Stmt& s, const ScopePtr& scope, List items, int64_t depth) {
    if (s.cond) {
      List kept;
      for (Value& item : items) {
        ScopePtr probe = child_of(scope);
        bind(*probe, s.targets, item);
        if (eval(*s.cond, *probe).truthy()) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec(s.else_body, child_of(scope));
    auto last_changed = std::make_shared<std::optional<Value>>();
    Value again = Value::undefined("the loop is not recursive: loop() needs 'recursive' after the loop's iterable");
    if (s.recursive)
      again = Value::function([this, &s, scope, depth](CallArgs& a) {
        if (a.pos.size() != 1) throw TemplateError("loop() takes exactly one argument: the items");
        if (macro_depth_ >= kMaxMacroDepth) throw TemplateError("recursive loop: maximum recursion depth exceeded");
        ++macro_depth_;
        struct Leave {
          int& d;
          ~Leave() { --d; }
        } leave{macro_depth_};
        return Value::string(capture_output([&] { run_loop(s, scope, iterate(a.pos[0]), depth + 1); }));
      });
    for (size_t i = 0; i < items.size(); ++i) {
      ScopePtr inner = child_of(scope);
      bind(*inner, s.targets, items[i]);
      inner->set("loop", loop_object(items, i, last_changed, depth, again));
      if (exec(s.body, inner) == Flow::break_) break;
    }
    return Flow::normal;
  }

  Value make_macro(const Stmt& s, const ScopePtr& scope) {
    std::weak_ptr<Scope> defined_in = scope;
    return Value::function([this, &s, defined_in](CallArgs& a) {
      ScopePtr parent = defined_in.lock();
      if (!parent) throw TemplateError("macro '" + s.text + "' called after its scope ended");
      // Python stops runaway recursion with RecursionError; a bounded depth keeps our stack safe the same way.
      if (macro_depth_ >= kMaxMacroDepth)
        throw TemplateError("macro '" + s.text + "': maximum recursion depth exceeded");
      struct Depth {
        int& d;
        explicit Depth(int& depth) : d(++depth) {}
        ~Depth() { --d; }
      } depth(macro_depth_);
      ScopePtr inner = child_of(parent);
      for (size_t k = 0; k < s.params.size(); ++k) {
        const auto& [name, def] = s.params[k];
        const Value* v = a.get(k, name);
        inner->set(name, v ? *v : def ? eval(*def, *inner) : undefined_name(name));
      }
      List varargs(a.pos.begin() + static_cast<ptrdiff_t>(std::min(a.pos.size(), s.params.size())), a.pos.end());
      inner->set("varargs", Value::list(std::move(varargs), true));  // a tuple, as in Python
      Dict kwargs;
      for (const auto& kv : a.kw) {  // (not a structured binding: clang 14 cannot capture one in the lambda)
        const std::string& key = kv.first;
        if (key == "caller")
          inner->set("caller", kv.second);
        else if (std::none_of(s.params.begin(), s.params.end(), [&](auto& p) { return p.first == key; }))
          kwargs.emplace_back(Value::string(key), kv.second);
      }
      inner->set("kwargs", Value::dict(std::move(kwargs)));
      return Value::string(capture(s.body, inner));
    });
  }

  Flow exec_call_block(const Stmt& s, const ScopePtr& scope) {
    const Expr& call = *s.expr;
    Value callee = eval(*call.a, *scope);
    CallArgs args = eval_args(call, *scope);
    args.kw.emplace_back("caller", Value::function([this, &s, scope](CallArgs& a) {
                           ScopePtr inner = child_of(scope);
                           for (size_t k = 0; k < s.params.size(); ++k) {
                             const Value* v = a.get(k, s.params[k].first);
                             inner->set(s.params[k].first, v                    ? *v
                                                           : s.params[k].second ? eval(*s.params[k].second, *inner)
                                                                                : undefined_name(s.params[k].first));
                           }
                           return Value::string(capture(s.body, inner));
                         }));
    append_str(*out_, invoke(callee, args));
    return Flow::normal;
  }

  Value apply_block_filter(const Expr& chain, const Value& text, const Scope& scope) {
    Value saved = std::move(block_input_);
    block_input_ = text;
    Value r = eval(chain, scope);
    block_input_ = std::move(saved);
    return r;
  }

  CallArgs eval_args(const Expr& e, const Scope& scope) {
    CallArgs a;
    for (const auto& x : e.args) a.pos.push_back(eval(*x, scope));
    for (const auto& [k, x] : e.kwargs) a.kw.emplace_back(k, eval(*x, scope));
    return a;
  }

  static Value invoke(const Value& fn, CallArgs& args) {
    if (fn.kind == Value::Kind::function) return (*fn.fn)(args);
    if (const Value* call = fn.is_dict() ? fn.find(std::string_view("__call__")) : nullptr) return invoke(*call, args);
    if (fn.is_undefined()) undefined_error(fn);
    throw TemplateError("'" + type_name(fn) + "' object is not callable");
  }

  Value eval(const Expr& e, const Scope& scope);

  std::string root_;
  std::string* out_ = &root_;
  std::vector<std::pair<size_t, size_t>>* generation_;
  Value block_input_;
  static constexpr int kMaxMacroDepth = 200;
  int macro_depth_ = 0;
};

Value Renderer::eval(const Expr& e, const Scope& scope) {
  switch (e.kind) {
    case EK::literal: return e.value;
    case EK::name: {
      if (const Value* v = scope.lookup(e.name)) return *v;
      return global(e.name);
    }
    case EK::attr: return get_attr(eval(*e.a, scope), e.name);
    case EK::item: return get_item(eval(*e.a, scope), eval(*e.b, scope));
    case EK::slice: {
      Value obj = eval(*e.a, scope);
      Value parts[3];
      const Expr* exprs[3] = {e.b.get(), e.c.get(), e.d.get()};
      for (int k = 0; k < 3; ++k)
        if (exprs[k]) parts[k] = eval(*exprs[k], scope);
      return get_slice(obj, exprs[0] ? &parts[0] : nullptr, exprs[1] ? &parts[1] : nullptr,
                       exprs[2] ? &parts[2] : nullptr);
    }
    case EK::call: {
      CallArgs args = eval_args(e, scope);
      if (e.a->kind == EK::attr) {
        Value obj = eval(*e.a->a, scope);
        Value result;
        if (!obj.is_undefined() && call_method(obj, e.a->name, args, result)) return result;
        return invoke(get_attr(obj, e.a->name), args);
      }
      return invoke(eval(*e.a, scope), args);
    }
    case EK::filter: {
      Value input = eval(*e.a, scope);
      CallArgs args = eval_args(e, scope);
      return call_filter(e.name, input, args);
    }
    case EK::test: {
      Value input = eval(*e.a, scope);
      CallArgs args = eval_args(e, scope);
      return Value::boolean(call_test(e.name, input, args) != e.negated);
    }
    case EK::neg:
    case EK::pos: {
      Value v = eval(*e.a, scope);
      if (!v.is_number())
        throw TemplateError("bad operand type for unary " + std::string(e.kind == EK::neg ? "-" : "+") + ": '" +
                            type_name(v) + "'");
      if (e.kind == EK::pos) return v;
      return v.kind == Value::Kind::floating ? Value::floating(-v.f)
                                             : Value::integer(-(v.kind == Value::Kind::boolean ? v.b : v.i));
    }
    case EK::not_: return Value::boolean(!eval(*e.a, scope).truthy());
    case EK::and_: {
      Value a = eval(*e.a, scope);
      return a.truthy() ? eval(*e.b, scope) : a;
    }
    case EK::or_: {
      Value a = eval(*e.a, scope);
      return a.truthy() ? a : eval(*e.b, scope);
    }
    case EK::binary: return binary_op(e.name, eval(*e.a, scope), eval(*e.b, scope));
    case EK::compare: {
      Value left = eval(*e.a, scope);
      for (size_t k = 0; k < e.ops.size(); ++k) {
        Value right = eval(*e.args[k], scope);
        const std::string& op = e.ops[k];
        bool ok = op == "=="   ? equal(left, right)
                  : op == "!=" ? !equal(left, right)
                  : op == "<"  ? less(left, right)
                  : op == ">"  ? less(right, left)
                  : op == "<=" ? !less(right, left)
                  : op == ">=" ? !less(left, right)
                  : op == "in" ? contains(right, left)
                               : !contains(right, left);
        if (!ok) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case EK::cond:
      if (eval(*e.a, scope).truthy()) return eval(*e.b, scope);
      return e.c ? eval(*e.c, scope) : Value::undefined();
    case EK::list:
    case EK::tuple: {
      List items;
      for (const auto& x : e.args) items.push_back(eval(*x, scope));
      return Value::list(std::move(items), e.kind == EK::tuple);
    }
    case EK::dict: {
      Value d = Value::dict();
      for (size_t k = 0; k + 1 < e.args.size(); k += 2) d.set(eval(*e.args[k], scope), eval(*e.args[k + 1], scope));
      return d;
    }
    case EK::block_input: return block_input_;
  }
  return Value::undefined();
}

bool uses_generation(const Body& body) {
  for (const auto& s : body) {
    if (s->kind == SK::generation || uses_generation(s->body) || uses_generation(s->else_body)) return true;
    for (const Body& b : s->bodies)
      if (uses_generation(b)) return true;
  }
  return false;
}

}  // namespace

Template::Template(std::string_view source) : body_(parse(source)), has_generation_(uses_generation(body_)) {}

std::string Template::render(const Value& context, std::vector<std::pair<size_t, size_t>>* generation) const {
  return Renderer(generation).run(body_, context);
}

}  // namespace qsft::jinja
