// One training example as a record describes it, before tokenization: a conversation for the chat format, a
// prompt/completion text pair, or token ids given by the data.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/conversation.h"

namespace qsft {

struct Example {
  enum class Kind { conversation, text, tokens };
  Kind kind = Kind::text;
  // conversation: the messages. For a prompt/completion of message lists, the first prompt_messages of them are
  // the prompt (0: a plain conversation, no prompt/completion split).
  Conversation conv;
  size_t prompt_messages = 0;
  // ShareGPT: whether the turns alternate user / assistant (the data pipeline warns when they do not).
  bool turns_alternate = true;
  // text: the prompt (untrained unless loss_mask is all) and the completion; a plain text is all completion.
  std::string prompt, completion;
  // tokens: ids as given, and which are trained (empty: all).
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;
};

}  // namespace qsft
