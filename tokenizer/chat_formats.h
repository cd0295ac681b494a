// The chat formats qwen-sft implements (internal to tokenizer/; use ChatFormat::for_model / by_name).
#pragma once
#include <memory>
#include <string>

#include "tokenizer/chat_format.h"

namespace qsft {

std::unique_ptr<ChatFormat> make_qwen25_format();
// think_in_generation_prompt: the newer template's generation prompt "<｜Assistant｜><think>\n" (else without it).
// bos: the BOS token's text (the tokenizer config's bos_token).
std::unique_ptr<ChatFormat> make_deepseek_r1_format(bool think_in_generation_prompt, std::string bos);

}  // namespace qsft
