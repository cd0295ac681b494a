#include "tokenizer/conversation_json.h"

#include <simdjson.h>

#include "engine/base/error.h"

namespace qsft {

namespace dom = simdjson::dom;

namespace {

struct Reader {
  const std::string& where;

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw InputError(where + ": " + field + ": " + what);
  }
  // The value of key, or nullopt when it is absent or null.
  std::optional<dom::element> field(dom::element obj, std::string_view key) const {
    dom::element v;
    if (obj.at_key(key).get(v) || v.is_null()) return std::nullopt;
    return v;
  }
  std::string text(std::optional<dom::element> v, const std::string& name) const {
    if (!v) return "";
    std::string_view s;
    if (v->get_string().get(s)) fail(name, "expected a string");
    return std::string(s);
  }
  dom::array list(dom::element v, const std::string& name) const {
    dom::array a;
    if (v.get_array().get(a)) fail(name, "expected a list");
    return a;
  }
  void require_object(dom::element v, const std::string& name) const {
    if (v.type() != dom::element_type::OBJECT) fail(name, "expected an object");
  }

  ToolCall tool_call(dom::element call, const std::string& name) const {
    require_object(call, name);
    dom::element fn = call;
    if (auto f = field(call, "function")) require_object(fn = *f, name + ".function");
    auto fn_name = field(fn, "name");
    auto args = field(fn, "arguments");
    if (!fn_name) fail(name, "has no function name");
    if (!args) fail(name, "has no arguments");
    return {text(fn_name, name + ".name"), simdjson::minify(*args)};
  }

  Message message(dom::element m, const std::string& name) const {
    require_object(m, name);
    Message msg;
    auto role = field(m, "role");
    if (!role) fail(name, "has no role");
    msg.role = text(role, name + ".role");
    if (auto content = field(m, "content"); content && content->type() != dom::element_type::STRING)
      fail(name + ".content", "expected a string (lists of content parts are not supported)");
    msg.content = text(field(m, "content"), name + ".content");
    msg.name = text(field(m, "name"), name + ".name");
    if (auto calls = field(m, "tool_calls")) {
      size_t i = 0;
      for (dom::element c : list(*calls, name + ".tool_calls"))
        msg.tool_calls.push_back(tool_call(c, name + ".tool_calls[" + std::to_string(i++) + "]"));
    }
    return msg;
  }
};

}  // namespace

Conversation parse_conversation_json(std::string_view json, const std::string& where, size_t* prompt_messages) {
  thread_local dom::parser parser;
  simdjson::padded_string padded(json);
  dom::element root;
  if (auto err = parser.parse(padded).get(root)) throw InputError(where + ": not valid JSON: " + error_message(err));
  Reader r{where};
  r.require_object(root, "(record)");
  Conversation conv;
  auto read_messages = [&](std::string_view key) {
    auto messages = r.field(root, key);
    if (!messages) r.fail(std::string(key), "missing");
    size_t i = 0;
    for (dom::element m : r.list(*messages, std::string(key)))
      conv.messages.push_back(r.message(m, std::string(key) + "[" + std::to_string(i++) + "]"));
  };
  if (r.field(root, "prompt") && r.field(root, "completion")) {
    if (!prompt_messages) r.fail("prompt", "a prompt-completion record where a conversation is expected");
    read_messages("prompt");
    *prompt_messages = conv.messages.size();
    read_messages("completion");
  } else {
    read_messages("messages");
    if (prompt_messages) *prompt_messages = 0;
  }
  if (auto tools = r.field(root, "tools"))
    for (dom::element t : r.list(*tools, "tools")) conv.tools_json.push_back(simdjson::minify(t));
  return conv;
}

}  // namespace qsft
