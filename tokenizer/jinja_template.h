// A Jinja template engine for Hugging Face chat templates: renders as jinja2 renders them in transformers'
// environment (ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, the loopcontrols extension,
// tojson as json.dumps(ensure_ascii=False, ...), raise_exception and strftime_now as globals, and
// {% generation %} blocks marking assistant output). Values: tokenizer/jinja_value.h; what templates can call:
// tokenizer/jinja_builtins.h. Unsupported syntax and runtime errors are TemplateError (an InputError) naming the
// template line.
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/jinja_ast.h"

namespace qsft::jinja {

class Template {
 public:
  explicit Template(std::string_view source);

  // The text for the variables of context (a dict); generation receives the byte ranges [begin, end) of the
  // text that {% generation %} blocks produced, in order.
  std::string render(const Value& context, std::vector<std::pair<size_t, size_t>>* generation = nullptr) const;
  // Whether the template marks assistant output with {% generation %}.
  bool has_generation() const { return has_generation_; }

 private:
  Body body_;
  bool has_generation_ = false;
};

}  // namespace qsft::jinja
