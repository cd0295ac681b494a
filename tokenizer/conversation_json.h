// Reading a conversation from OpenAI-style JSON: {"messages": [{"role", "content", "tool_calls", "name"}...],
// "tools": [...]}. Tool calls may be {"function": {"name", "arguments"}} or {"name", "arguments"}.
#pragma once
#include <string>
#include <string_view>

#include "tokenizer/conversation.h"

namespace qsft {

// A prompt-completion record, {"prompt": [messages], "completion": [messages], "tools": [...]} as TRL takes it,
// gives the prompt's messages followed by the completion's, and sets *prompt_messages to the prompt's count
// (an InputError when prompt_messages is null); a messages record sets it to 0.
// InputError naming `where` (e.g. "data.jsonl line 3") and the field when the JSON does not have this shape.
Conversation parse_conversation_json(std::string_view json, const std::string& where,
                                     size_t* prompt_messages = nullptr);

}  // namespace qsft
