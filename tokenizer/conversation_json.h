// Reading a conversation from OpenAI-style JSON text: {"messages": [{"role", "content", "reasoning_content",
// "tool_calls", "name"}...], "tools": [...]}, or TRL's prompt-completion record {"prompt": [messages],
// "completion": [messages], "tools"}. Content is a string, null or a list of parts: {"type": "text", "text" or
// "value"} (joined), and in assistant turns {"type": "reasoning", "value" or "text"} (the reasoning_content) and
// {"type": "tool_call", "value": {"name", "arguments"} or its JSON text} (a tool call); roles system, user,
// assistant and tool. The reader itself, on parsed JSON, is tokenizer/conversation_json_internal.h (simdjson).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include "tokenizer/conversation.h"

namespace qsft {

// The conversation of JSON text, as the chat template sees it (qwen-sft tokenize: byte parity with jinja2); with
// prompt_messages, a prompt-completion record is read too (read_conversation). Errors are InputError prefixed
// with `where` (e.g. "data.jsonl line 3").
Conversation parse_conversation_json(std::string_view json, const std::string& where,
                                     size_t* prompt_messages = nullptr);

}  // namespace qsft
