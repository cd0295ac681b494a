// Prompts for generation (qwen-sft generate, chat, and training's generation_prompts): a JSONL file of prompts
// and the model's tokenizer and chat template, applied with the generation prompt.
// A line is a prompt string (a user message), a list of messages, {"messages": [...]} or {"prompt": "..."};
// messages as in the training data (tokenizer/conversation_json.h). Blank lines are skipped.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/chat_format.h"

namespace qsft {

class PromptEncoder {
 public:
  // The tokenizer and chat format of model_dir (chat_format: "" = recognised from its template). A model without
  // a chat template takes a single user message as plain text.
  PromptEncoder(const std::string& model_dir, const std::string& chat_format);

  std::vector<int32_t> encode(const Conversation& conv) const;
  // Completion text of generated ids: special tokens (eos) skipped, ids past the tokenizer's vocabulary dropped.
  std::string text(const std::vector<int32_t>& ids) const;
  const Tokenizer& tokenizer() const { return tok_; }

 private:
  Tokenizer tok_;
  std::unique_ptr<ChatFormat> chat_;  // null: the model has no chat template
  std::string chat_error_;            // why there is none
};

// One line as a conversation; errors are InputError prefixed with `where` and name the field.
Conversation parse_prompt_line(const std::string& line, const std::string& where);
// Every prompt of the file, encoded. A bad line: InputError "PATH line N: field: what"; no prompt: InputError.
std::vector<std::vector<int32_t>> read_prompts(const std::string& path, const PromptEncoder& enc);

}  // namespace qsft
