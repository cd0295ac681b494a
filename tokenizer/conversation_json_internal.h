// Reading conversations from parsed OpenAI-style JSON (tokenizer/conversation_json.h gives the formats): the one
// reader of message lists. qwen-sft tokenize reads records with it, and so do the data pipeline's record formats,
// which read their other fields with the same json_fields helpers. Errors are InputError "field: reason" (e.g.
// "messages[2].role: unknown role 'bot' ..."); parse_conversation_json adds where.
// Internal to .cpp files: this header includes simdjson.h, which nvcc cannot compile.
#pragma once
#include <simdjson.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/error.h"
#include "tokenizer/conversation_json.h"

namespace qsft {

// Fields of a parsed JSON value, with errors that name the field and say what was expected and what was found.
namespace json_fields {

namespace dom = simdjson::dom;

[[noreturn]] inline void bad_field(const std::string& field, const std::string& reason) {
  throw InputError(field + ": " + reason);
}

inline const char* type_name(dom::element v) {
  switch (v.type()) {
    case dom::element_type::ARRAY: return "a list";
    case dom::element_type::OBJECT: return "an object";
    case dom::element_type::STRING: return "a string";
    case dom::element_type::BOOL: return "a boolean";
    case dom::element_type::NULL_VALUE: return "null";
    default: return "a number";
  }
}

// The value of key, or nullopt when it is absent or null.
inline std::optional<dom::element> field(dom::element obj, std::string_view key) {
  dom::element v;
  if (obj.at_key(key).get(v) || v.is_null()) return std::nullopt;
  return v;
}

inline std::string_view as_string(dom::element v, const std::string& name) {
  std::string_view s;
  if (v.get_string().get(s)) bad_field(name, std::string("expected a string, got ") + type_name(v));
  return s;
}

inline dom::array as_list(dom::element v, const std::string& name) {
  dom::array a;
  if (v.get_array().get(a)) bad_field(name, std::string("expected a list, got ") + type_name(v));
  return a;
}

inline dom::object as_object(dom::element v, const std::string& name) {
  dom::object o;
  if (v.get_object().get(o)) bad_field(name, std::string("expected an object, got ") + type_name(v));
  return o;
}

inline dom::element required(dom::element obj, std::string_view key, const std::string& name) {
  auto v = field(obj, key);
  if (!v) bad_field(name, "missing");
  return *v;
}

inline std::string_view required_string(dom::element obj, std::string_view key, const std::string& name) {
  return as_string(required(obj, key, name), name);
}

inline std::string_view optional_string(dom::element obj, std::string_view key, const std::string& name) {
  auto v = field(obj, key);
  return v ? as_string(*v, name) : std::string_view();
}

// use(value) of a JSON value held as text in a string field (ShareGPT tools and function calls), parsed on its own.
template <class F>
auto with_json_text(std::string_view text, const std::string& name, F&& use) {
  thread_local dom::parser parser;
  dom::element v;
  if (auto err = parser.parse(text.data(), text.size()).get(v))
    bad_field(name, std::string("expected JSON text: ") + simdjson::error_message(err));
  return use(v);
}

}  // namespace json_fields

// Both readings accept content as a string, null or a list of parts (conversation_json.h);
// roles system, user, assistant and tool; tool calls (assistant only) as {"function": {"name", "arguments"}} or
// {"name", "arguments"}; tools as a list or the JSON text of one. They differ in what they make of the data:
enum class Reading {
  // The JSON as the chat template sees it (qwen-sft tokenize: byte parity with jinja2).
  as_written,
  // The data pipeline's: tool-call arguments given as JSON text of an object become that object (templates tojson
  // them, which would quote the text), tools without a "type" are wrapped as {"type": "function", "function": ...},
  // and an assistant turn needs content or tool calls (else it has nothing to train).
  for_training,
};

ToolCall read_tool_call(simdjson::dom::element call, const std::string& name, Reading how);
// Each tool as JSON text.
std::vector<std::string> read_tools(simdjson::dom::element tools, const std::string& name, Reading how);

// A record's conversation: its "messages", or, when it has none, its "prompt" messages followed by its
// "completion" messages with *prompt_messages set to the prompt's count (InputError when prompt_messages is
// null); a messages record sets it to 0. Empty message lists are InputErrors.
Conversation read_conversation(simdjson::dom::element record, Reading how, size_t* prompt_messages = nullptr);

}  // namespace qsft
