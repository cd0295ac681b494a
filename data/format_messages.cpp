// Conversation formats: OpenAI messages and ShareGPT.
#include "data/record_format.h"
#include "tokenizer/conversation_json.h"

namespace qsft {

using namespace json_fields;

namespace {

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
    with_json_text(value, name + ".value", [&](dom::element v) {
      if (v.is_array()) {
        size_t k = 0;
        for (dom::element c : v.get_array())
          m.tool_calls.push_back(
              read_tool_call(c, name + ".value[" + std::to_string(k++) + "]", Reading::for_training));
      } else {
        m.tool_calls.push_back(read_tool_call(v, name + ".value", Reading::for_training));
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

Example messages_example(dom::element record) {
  Example ex;
  ex.kind = Example::Kind::conversation;
  ex.conv = read_conversation(record, Reading::for_training);
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
  if (auto tools = field(record, "tools")) ex.conv.tools_json = read_tools(*tools, "tools", Reading::for_training);
  return ex;
}

}  // namespace qsft
