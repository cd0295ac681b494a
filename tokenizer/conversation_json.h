// Reading a conversation from OpenAI-style JSON: {"messages": [{"role", "content", "tool_calls", "name"}...],
// "tools": [...]}. Tool calls may be {"function": {"name", "arguments"}} or {"name", "arguments"}.
#pragma once
#include <string>
#include <string_view>

#include "tokenizer/conversation.h"

namespace qsft {

// InputError naming `where` (e.g. "data.jsonl line 3") and the field when the JSON does not have this shape.
Conversation parse_conversation_json(std::string_view json, const std::string& where);

}  // namespace qsft
