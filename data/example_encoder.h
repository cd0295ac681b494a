// Example -> token ids and the trained mask, by the loss-mask policy:
//   assistant   conversations: the assistant output the chat format marks; texts: the completion
//   completion  the completion: after the prompt (prompt/completion, templates; for a plain conversation its
//               last assistant output)
//   all         every token
//   auto        assistant for conversations, completion for prompt/completion pairs and templates (a plain text
//               is all completion); pre-tokenized examples keep their own mask
// Texts get the tokenizer's special prefix (DeepSeek: BOS) and, with append_eos, the EOS token (trained).
#pragma once
#include <cstdint>
#include <string>

#include "data/example.h"
#include "tokenizer/chat_format.h"
#include "tokenizer/tokenizer.h"

namespace qsft {

enum class LossMask { automatic, assistant, completion, all };
LossMask loss_mask_from_name(const std::string& name);  // auto|assistant|completion|all

// A conversation met without a chat format to render it: a configuration problem, never a skippable record.
struct NoChatFormat : InputError {
  using InputError::InputError;
};

struct EncoderOptions {
  LossMask loss_mask = LossMask::automatic;
  bool append_eos = true;
  int32_t eos_id = -1;
};

class ExampleEncoder {
 public:
  // chat may be null (the model has none): conversations then throw NoChatFormat(chat_error).
  ExampleEncoder(const Tokenizer& tok, const ChatFormat* chat, std::string chat_error, EncoderOptions opt);
  // Bad examples (what the chat format cannot show, ids outside the vocabulary): InputError naming the field.
  Encoded encode(const Example& ex) const;

 private:
  Encoded encode_text(const Example& ex) const;
  Encoded encode_conversation(const Example& ex) const;
  Encoded encode_tokens(const Example& ex) const;

  const Tokenizer& tok_;
  const ChatFormat* chat_;
  std::string chat_error_;
  EncoderOptions opt_;
  std::vector<int32_t> special_prefix_;  // what the post-processor puts before a text (DeepSeek: BOS)
};

}  // namespace qsft
