#include "tokenizer/conversation_json_internal.h"

namespace qsft {

using namespace json_fields;

namespace {

constexpr const char* kPartTypes =
    "text ({\"type\": \"text\", \"text\" or \"value\": ...}), reasoning ({\"type\": \"reasoning\", \"value\" or "
    "\"text\": ...}) and tool_call ({\"type\": \"tool_call\", \"value\": {\"name\", \"arguments\"}})";

// A part's text: its "text", else its "value".
std::string_view part_text(dom::element part, const std::string& name) {
  if (field(part, "text")) return required_string(part, "text", name + ".text");
  return required_string(part, "value", name + ".value");
}

// Content given as a list of parts: text parts joined into content, reasoning parts into reasoning_content,
// tool_call parts (an object, or the JSON text of one) appended to tool_calls.
void read_content_parts(dom::element content, const std::string& name, Reading how, Message& msg) {
  size_t i = 0;
  for (dom::element part : as_list(content, name)) {
    const std::string part_name = name + "[" + std::to_string(i++) + "]";
    as_object(part, part_name);
    std::string_view type = required_string(part, "type", part_name + ".type");
    if (type == "text") {
      msg.content += part_text(part, part_name);
    } else if (type == "reasoning") {
      msg.reasoning_content = msg.reasoning_content.value_or("") + std::string(part_text(part, part_name));
    } else if (type == "tool_call") {
      const std::string call_name = part_name + ".value";
      dom::element v = required(part, "value", call_name);
      const auto read = [&](dom::element call) { return read_tool_call(call, call_name, how); };
      msg.tool_calls.push_back(v.is_string() ? with_json_text(as_string(v, call_name), call_name, read) : read(v));
    } else {
      bad_field(part_name + ".type", "unknown part type '" + std::string(type) + "' (supported: " + kPartTypes + ")");
    }
    if (type != "text" && msg.role != "assistant")
      bad_field(part_name + ".type", "only assistant turns have " + std::string(type) + " parts");
  }
}

// Content as a string, null or a list of parts.
void read_content(dom::element m, const std::string& name, Reading how, Message& msg) {
  dom::element raw;
  msg.content_null = !m.at_key("content").get(raw) && raw.is_null();
  auto content = field(m, "content");
  if (!content) return;
  if (content->is_string()) {
    msg.content = std::string(as_string(*content, name));
    return;
  }
  if (!content->is_array())
    bad_field(name, std::string("expected a string, a list of parts or null, got ") + type_name(*content));
  read_content_parts(*content, name, how, msg);
}

// The arguments as JSON text; for training, the object that JSON text in a string holds (OpenAI sends them so).
std::string arguments_json(dom::element args, Reading how) {
  if (how == Reading::for_training && args.is_string()) {
    std::string_view text = args.get_string().value();
    thread_local dom::parser parser;
    dom::element parsed;
    if (!parser.parse(text.data(), text.size()).get(parsed) && parsed.is_object()) return simdjson::minify(parsed);
  }
  return simdjson::minify(args);
}

Message read_message(dom::element m, const std::string& name, Reading how) {
  as_object(m, name);
  Message msg;
  msg.role = std::string(required_string(m, "role", name + ".role"));
  if (msg.role != "system" && msg.role != "user" && msg.role != "assistant" && msg.role != "tool")
    bad_field(name + ".role", "unknown role '" + msg.role + "' (expected system, user, assistant or tool)");
  read_content(m, name + ".content", how, msg);
  if (auto reasoning = field(m, "reasoning_content")) {
    const std::string field_name = name + ".reasoning_content";
    if (msg.role != "assistant") bad_field(field_name, "only assistant turns have reasoning");
    if (msg.reasoning_content) bad_field(field_name, "reasoning given both here and as reasoning parts of content");
    msg.reasoning_content = std::string(as_string(*reasoning, field_name));
  }
  msg.name = std::string(optional_string(m, "name", name + ".name"));
  if (auto calls = field(m, "tool_calls")) {
    if (msg.role != "assistant") bad_field(name + ".tool_calls", "only assistant turns have tool calls");
    size_t k = 0;
    for (dom::element c : as_list(*calls, name + ".tool_calls"))
      msg.tool_calls.push_back(read_tool_call(c, name + ".tool_calls[" + std::to_string(k++) + "]", how));
  }
  if (how == Reading::for_training && msg.role == "assistant" && msg.content.empty() && msg.tool_calls.empty() &&
      msg.reasoning_content.value_or("").empty())
    bad_field(name, "an assistant turn with neither content nor tool_calls (nor reasoning)");
  return msg;
}

void append_messages(dom::element record, const char* key, Reading how, std::vector<Message>& out) {
  const std::string name(key);
  size_t i = 0;
  for (dom::element m : as_list(required(record, key, name), name))
    out.push_back(read_message(m, name + "[" + std::to_string(i++) + "]", how));
  if (i == 0) bad_field(name, name == "messages" ? "empty conversation" : "empty message list");
}

std::string tool_json(dom::element tool, const std::string& name, Reading how) {
  as_object(tool, name);
  std::string json = simdjson::minify(tool);
  if (how == Reading::as_written || field(tool, "type")) return json;
  return "{\"type\":\"function\",\"function\":" + json + "}";
}

}  // namespace

ToolCall read_tool_call(dom::element call, const std::string& name, Reading how) {
  as_object(call, name);
  dom::element fn = call;
  if (auto f = field(call, "function")) {
    as_object(*f, name + ".function");
    fn = *f;
  }
  ToolCall tc;
  tc.id = std::string(optional_string(call, "id", name + ".id"));
  tc.name = std::string(required_string(fn, "name", name + ".name"));
  tc.arguments_json = arguments_json(required(fn, "arguments", name + ".arguments"), how);
  return tc;
}

std::vector<std::string> read_tools(dom::element tools, const std::string& name, Reading how) {
  auto read_list = [&](dom::element list) {
    std::vector<std::string> out;
    size_t i = 0;
    for (dom::element t : as_list(list, name)) out.push_back(tool_json(t, name + "[" + std::to_string(i++) + "]", how));
    return out;
  };
  if (tools.is_string()) {
    std::string_view text = as_string(tools, name);
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return {};
    return with_json_text(text, name, read_list);
  }
  return read_list(tools);
}

Conversation read_conversation(dom::element record, Reading how, size_t* prompt_messages) {
  as_object(record, "(record)");
  Conversation conv;
  if (field(record, "messages") || !field(record, "prompt")) {
    append_messages(record, "messages", how, conv.messages);
    if (prompt_messages) *prompt_messages = 0;
  } else {
    if (!prompt_messages) bad_field("prompt", "a prompt-completion record where a conversation is expected");
    append_messages(record, "prompt", how, conv.messages);
    *prompt_messages = conv.messages.size();
    append_messages(record, "completion", how, conv.messages);
  }
  if (auto tools = field(record, "tools")) conv.tools_json = read_tools(*tools, "tools", how);
  return conv;
}

Conversation parse_conversation_json(std::string_view json, const std::string& where, size_t* prompt_messages) {
  thread_local dom::parser parser;
  simdjson::padded_string padded(json);
  dom::element root;
  if (auto err = parser.parse(padded).get(root)) throw InputError(where + ": not valid JSON: " + error_message(err));
  try {
    return read_conversation(root, Reading::as_written, prompt_messages);
  } catch (const InputError& e) {
    throw InputError(where + ": " + e.what());
  }
}

}  // namespace qsft
