// The chat formats qwen-sft implements (internal to tokenizer/; use ChatFormat::for_model / by_name).
#pragma once
#include <memory>
#include <string>

#include "engine/base/error.h"
#include "tokenizer/chat_format.h"

namespace qsft {

// Null content as the templates show it: printed ({{ message.content }}) it is "None"; added to a string
// ('...' + message.content) jinja2 refuses it.
inline std::string_view printed_content(const Message& m) {
  return m.content_null ? std::string_view("None") : std::string_view(m.content);
}
inline const std::string& added_content(const Message& m, size_t index) {
  if (m.content_null)
    throw InputError("messages[" + std::to_string(index) + "].content: null (the chat template adds it to a string)");
  return m.content;
}

std::unique_ptr<ChatFormat> make_qwen25_format();
// think_in_generation_prompt: the newer template's generation prompt "<｜Assistant｜><think>\n" (else without it).
// bos: the BOS token's text (the tokenizer config's bos_token).
std::unique_ptr<ChatFormat> make_deepseek_r1_format(bool think_in_generation_prompt, std::string bos);

}  // namespace qsft
