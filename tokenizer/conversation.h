// A conversation as the chat formats take it: OpenAI-style messages, with tool calls and tool results, and the
// tools offered to the model. JSON values are kept as JSON text; the formats re-serialise them as the chat
// template's tojson does (engine/base/json_text.h).
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace qsft {

struct ToolCall {
  std::string name;
  std::string arguments_json;  // the arguments value as JSON text: an object, or a string if the data has one
  std::string id;              // "" = none given
};

struct Message {
  std::string role;  // system | user | assistant | tool
  std::string content;
  std::vector<ToolCall> tool_calls;                             // assistant only
  std::string name;                                             // tool only (optional)
  bool content_null = false;                                    // content was null (templates see None; content is "")
  std::optional<std::string> reasoning_content = std::nullopt;  // assistant only: the thinking before the answer
};

struct Conversation {
  std::vector<Message> messages;
  std::vector<std::string> tools_json;  // each tool as JSON text
};

}  // namespace qsft
