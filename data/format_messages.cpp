// Conversation formats: OpenAI messages and ShareGPT.
#include "data/json_fields.h"
#include "data/record_format.h"

namespace qsft {

using namespace json_fields;

namespace {

// A JSON value held as text in a string field (ShareGPT tools and function calls), parsed on its own.
template <class F>
auto with_embedded_json(std::string_view text, const std::string& name, F&& use) {
  thread_local dom::parser parser;
  dom::element v;
  if (auto err = parser.parse(text.data(), text.size()).get(v))
    bad_field(name, std::string("expected JSON text: ") + simdjson::error_message(err));
  return use(v);
}

// Content: a string, null, or typed parts [{"type": "text", "text": ...}] (joined).
std::string read_content(dom::element m, const std::string& name) {
  auto content = field(m, "content");
  if (!content) return "";
  if (content->is_string()) return std::string(as_string(*content, name));
  if (!content->is_array()) bad_field(name, std::string("expected a string, a list of parts or null, got ") +
                                                type_name(*content));
  std::string text;
  size_t i = 0;
  for (dom::element part : as_list(*content, name)) {
    const std::string part_name = name + "[" + std::to_string(i++) + "]";
    as_object(part, part_name);
    std::string_view type = required_string(part, "type", part_name + ".type");
    if (type != "text") bad_field(part_name + ".type", "'" + std::string(type) + "' parts are not supported (text only)");
    text += required_string(part, "text", part_name + ".text");
  }
  return text;
}

ToolCall read_tool_call(dom::element call, const std::string& name) {
  as_object(call, name);
  dom::element fn = call;
  if (auto f = field(call, "function")) {
    as_object(*f, name + ".function");
    fn = *f;
  }
  ToolCall tc;
  tc.name = std::string(required_string(fn, "name", name + ".name"));
  dom::element args = required(fn, "arguments", name + ".arguments");
  tc.arguments_json = simdjson::minify(args);
  // OpenAI sends arguments as JSON text; chat templates expect the object (tojson of a string would quote it).
  if (args.is_string()) {
    std::string_view text = args.get_string().value();
    thread_local dom::parser parser;
    dom::element parsed;
    if (!parser.parse(text.data(), text.size()).get(parsed) && parsed.is_object()) tc.arguments_json = simdjson::minify(parsed);
  }
  return tc;
}

Message read_message(dom::element m, const std::string& name) {
  as_object(m, name);
  Message msg;
  msg.role = std::string(required_string(m, "role", name + ".role"));
  if (msg.role != "system" && msg.role != "user" && msg.role != "assistant" && msg.role != "tool")
    bad_field(name + ".role", "unknown role '" + msg.role + "' (expected system, user, assistant or tool)");
  msg.content = read_content(m, name + ".content");
  msg.name = std::string(optional_string(m, "name", name + ".name"));
  if (auto calls = field(m, "tool_calls")) {
    if (msg.role != "assistant") bad_field(name + ".tool_calls", "only assistant turns have tool calls");
    size_t k = 0;
    for (dom::element c : as_list(*calls, name + ".tool_calls"))
      msg.tool_calls.push_back(read_tool_call(c, name + ".tool_calls[" + std::to_string(k++) + "]"));
  }
  if (msg.role == "assistant" && msg.content.empty() && msg.tool_calls.empty())
    bad_field(name, "an assistant turn with neither content nor tool_calls");
  return msg;
}

std::string tool_json(dom::element tool, const std::string& name) {
  as_object(tool, name);
  std::string json = simdjson::minify(tool);
  if (field(tool, "type")) return json;
  return "{\"type\":\"function\",\"function\":" + json + "}";
}

Message sharegpt_turn(dom::element turn, const std::string& name) {
  as_object(turn, name);
  const std::string from(required_string(turn, "from", name + ".from"));
  std::string_view value = required_string(turn, "value", name + ".value");
  Message m;
  if (from == "human" || from == "user") {
    m.role = "user";
  } else if (from == "gpt" || from == "assistant") {
    m.role = "assistant";
    if (value.empty()) bad_field(name + ".value", "an assistant turn with no content");
  } else if (from == "system") {
    m.role = "system";
  } else if (from == "observation" || from == "tool") {
    m.role = "tool";
  } else if (from == "function_call") {
    m.role = "assistant";
    with_embedded_json(value, name + ".value", [&](dom::element v) {
      if (v.is_array()) {
        size_t k = 0;
        for (dom::element c : v.get_array()) m.tool_calls.push_back(read_tool_call(c, name + ".value[" + std::to_string(k++) + "]"));
      } else {
        m.tool_calls.push_back(read_tool_call(v, name + ".value"));
      }
      return 0;
    });
    if (m.tool_calls.empty()) bad_field(name + ".value", "a function_call turn with no calls");
    return m;
  } else {
    bad_field(name + ".from", "unknown role '" + from +
                                  "' (expected human, gpt, system, function_call or observation)");
  }
  m.content = std::string(value);
  return m;
}

}  // namespace

std::vector<Message> read_messages(dom::element list, const std::string& name) {
  std::vector<Message> msgs;
  size_t i = 0;
  for (dom::element m : as_list(list, name)) msgs.push_back(read_message(m, name + "[" + std::to_string(i++) + "]"));
  return msgs;
}

std::vector<std::string> read_tools(dom::element tools, const std::string& name) {
  auto read_list = [&](dom::element list) {
    std::vector<std::string> out;
    size_t i = 0;
    for (dom::element t : as_list(list, name)) out.push_back(tool_json(t, name + "[" + std::to_string(i++) + "]"));
    return out;
  };
  if (tools.is_string()) {
    std::string_view text = as_string(tools, name);
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return {};
    return with_embedded_json(text, name, read_list);
  }
  return read_list(tools);
}

Example messages_example(dom::element record) {
  Example ex;
  ex.kind = Example::Kind::conversation;
  ex.conv.messages = read_messages(required(record, "messages", "messages"), "messages");
  if (ex.conv.messages.empty()) bad_field("messages", "empty conversation");
  if (auto tools = field(record, "tools")) ex.conv.tools_json = read_tools(*tools, "tools");
  return ex;
}

Example sharegpt_example(dom::element record) {
  Example ex;
  ex.kind = Example::Kind::conversation;
  std::string_view system = optional_string(record, "system", "system");
  if (!system.empty()) ex.conv.messages.push_back({"system", std::string(system), {}, {}});
  size_t i = 0;
  for (dom::element turn : as_list(required(record, "conversations", "conversations"), "conversations"))
    ex.conv.messages.push_back(sharegpt_turn(turn, "conversations[" + std::to_string(i++) + "]"));
  if (i == 0) bad_field("conversations", "empty conversation");
  if (auto tools = field(record, "tools")) ex.conv.tools_json = read_tools(*tools, "tools");
  return ex;
}

}  // namespace qsft
