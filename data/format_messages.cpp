// Conversation formats: OpenAI messages and ShareGPT.
#include <algorithm>
#include <initializer_list>

#include "data/record_format_internal.h"
#include "tokenizer/conversation_json_internal.h"

namespace qsft {

using namespace json_fields;

namespace {

// ShareGPT's speakers as LLaMA-Factory and FastChat read them (FastChat maps user to human and chatgpt, bard and
// bing to gpt).
bool is_one_of(std::string_view from, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), from) != names.end();
}

Message sharegpt_turn(dom::element turn, const std::string& name) {
  as_object(turn, name);
  const std::string from(required_string(turn, "from", name + ".from"));
  std::string_view value = required_string(turn, "value", name + ".value");
  Message m;
  if (is_one_of(from, {"human", "user"})) {
    m.role = "user";
  } else if (is_one_of(from, {"gpt", "assistant", "chatgpt", "bard", "bing"})) {
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
                                  "' (expected human or user; gpt, assistant, chatgpt, bard or bing; system; "
                                  "function_call; observation or tool)");
  }
  m.content = std::string(value);
  return m;
}

// Whether the turns after the system prompt alternate between the prompt side (user, tool results) and the
// assistant, starting with the prompt side, as LLaMA-Factory requires of ShareGPT data.
bool turns_alternate(const std::vector<Message>& messages) {
  size_t k = 0;
  for (const Message& m : messages) {
    if (m.role == "system" && k == 0) continue;
    if ((m.role == "assistant") != (k++ % 2 == 1)) return false;
  }
  return true;
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
  ex.turns_alternate = turns_alternate(ex.conv.messages);
  return ex;
}

}  // namespace qsft
