// The Jinja parser: tokens (tokenizer/jinja_lexer.h) to a syntax tree (tokenizer/jinja_ast.h), with jinja2's
// grammar and operator precedence. Statements: if/elif/else, for (tuple targets, loop filter, else), set (names,
// tuples, namespace attributes, block set with a filter), macro, call blocks, filter blocks, with, break and
// continue, and generation. Anything else (extends, include, import, ...) is a TemplateError
// "chat template line N: ... is not supported".
#pragma once
#include <string_view>

#include "tokenizer/jinja_ast.h"

namespace qsft::jinja {

Body parse(std::string_view source);

}  // namespace qsft::jinja
