// The chat format of any model: its Jinja chat template rendered by qwen-sft's engine (tokenizer/jinja_template.h)
// with the variables transformers' apply_chat_template passes (messages, tools — None when there are none —,
// add_generation_prompt, the special tokens bos_token/eos_token/pad_token, and extra keyword arguments such as
// enable_thinking). ChatFormat::for_model chooses it for a template without a native renderer; the native ones
// (chat_qwen25.cpp, chat_deepseek_r1.cpp) stay the fast path and render the same bytes.
//
// Trained text (assistant-only loss), per assistant message i of a conversation whose full render is F:
//  * when the template has {% generation %} blocks, exactly the text they produce;
//  * otherwise the assistant's turn after its role header, through its end-of-turn text:
//      start = where F stops agreeing with render(messages[:i], add_generation_prompt=True), i.e. after the
//              generation prompt (the role header is not trained; where the prompt ends with text the turn
//              does not have, such as DeepSeek's "<think>\n", the turn starts where they differ; a first
//              message the template cannot render without, starts at its content);
//      end   = the end of render(messages[:i+1]) when that is a prefix of F (the turn as rendered when it is
//              the last message: content, tool calls, end-of-turn token and the template's newline after it);
//              else (templates that render earlier turns differently, such as Qwen3 dropping the reasoning of
//              turns before the last user message) the end of the turn's content in F — found by rendering F
//              again with the message's content replaced by a sentinel — plus the text the template writes
//              after the content when the turn is last (tool calls, end-of-turn token), which must follow there.
//    A turn where neither holds is an InputError naming the message.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "tokenizer/chat_format.h"
#include "tokenizer/jinja_value.h"

namespace qsft {

struct ChatTemplateVariables {
  std::optional<std::string> bos_token, eos_token, pad_token;
  jinja::Value extra = jinja::Value::dict();  // more keyword arguments (enable_thinking, ...)
};

// The chat format of the template text (from `source`, named in errors). Syntax errors: InputError naming the
// template line.
std::unique_ptr<ChatFormat> make_jinja_format(const std::string& template_text, const std::string& source,
                                              ChatTemplateVariables vars);

// The conversation as chat templates see it: {"role", "content"}, tool calls as
// {"type": "function", "function": {"name", "arguments"}} (arguments parsed from their JSON text), "name" for tool
// results that have one; tools parsed from their JSON text.
jinja::Value messages_value(const Conversation& conv);
jinja::Value tools_value(const Conversation& conv);

}  // namespace qsft
