#include "data/example_encoder.h"

#include <algorithm>

#include "engine/base/error.h"

namespace qsft {

LossMask loss_mask_from_name(const std::string& name) {
  if (name == "auto") return LossMask::automatic;
  if (name == "assistant") return LossMask::assistant;
  if (name == "completion") return LossMask::completion;
  if (name == "all") return LossMask::all;
  throw InputError("data.loss_mask: '" + name + "' is not one of auto, assistant, completion, all");
}

ExampleEncoder::ExampleEncoder(const Tokenizer& tok, const ChatFormat* chat, std::string chat_error, EncoderOptions opt)
    : tok_(tok), chat_(chat), chat_error_(std::move(chat_error)), opt_(opt), special_prefix_(tok.encode("", true)) {
  if (opt_.append_eos && opt_.eos_id < 0)
    throw InputError("data.append_eos: the tokenizer has no eos token; set data.eos_token");
}

Encoded ExampleEncoder::encode(const Example& ex) const {
  Encoded e;
  switch (ex.kind) {
    case Example::Kind::conversation: e = encode_conversation(ex); break;
    case Example::Kind::text: e = encode_text(ex); break;
    case Example::Kind::tokens: e = encode_tokens(ex); break;
  }
  if (opt_.loss_mask == LossMask::all) std::fill(e.mask.begin(), e.mask.end(), 1);
  return e;
}

Encoded ExampleEncoder::encode_text(const Example& ex) const {
  // Prompt and completion normalised on their own so that the completion's byte range stays exact; a token that
  // overlaps the completion is trained (as for chat formats).
  const std::string text = tok_.normalize(ex.prompt) + tok_.normalize(ex.completion);
  const size_t completion_begin = text.size() - tok_.normalize(ex.completion).size();
  Encoded e;
  e.ids = special_prefix_;
  std::vector<ByteSpan> spans;
  tok_.encode_into(text, e.ids, &spans);
  e.mask.assign(special_prefix_.size(), 0);
  for (const ByteSpan& s : spans) e.mask.push_back(s.end > completion_begin);
  if (opt_.append_eos && (e.ids.empty() || e.ids.back() != opt_.eos_id)) {
    e.ids.push_back(opt_.eos_id);
    e.mask.push_back(1);
  }
  return e;
}

Encoded ExampleEncoder::encode_conversation(const Example& ex) const {
  if (!chat_) throw NoChatFormat(chat_error_);
  const bool completion =
      opt_.loss_mask == LossMask::completion || (opt_.loss_mask == LossMask::automatic && ex.prompt_messages > 0);
  // Everything after the prompt rendered with the generation prompt, as TRL does (from the first token that
  // differs where the template renders the prompt otherwise, as DeepSeek's "<think>\n" generation prompt does).
  if (completion && ex.prompt_messages > 0) return chat_->encode_completion(ex.conv, ex.prompt_messages, tok_);
  Encoded e = chat_->encode(ex.conv, tok_);
  if (!completion) return e;
  // A plain conversation: its last run of assistant output.
  auto last = std::find(e.mask.rbegin(), e.mask.rend(), 1);
  auto first = std::find(last, e.mask.rend(), 0);
  std::fill(first, e.mask.rend(), 0);
  return e;
}

Encoded ExampleEncoder::encode_tokens(const Example& ex) const {
  for (size_t i = 0; i < ex.ids.size(); ++i)
    if (ex.ids[i] < 0 || ex.ids[i] >= tok_.vocab_size())
      throw InputError("input_ids[" + std::to_string(i) + "]: id " + std::to_string(ex.ids[i]) +
                       " is outside the vocabulary (0.." + std::to_string(tok_.vocab_size() - 1) + ")");
  Encoded e{ex.ids, ex.mask};
  if (e.mask.empty()) e.mask.assign(e.ids.size(), 1);
  return e;
}

}  // namespace qsft
