// Chat formats: native renderers of a model's chat template. Each renders exactly the text Hugging Face's
// apply_chat_template renders with the model's Jinja template, and knows which parts are assistant output, so
// that encode() gives the token ids and a per-token trained mask without a training template.
//
// A format is chosen by recognising the model's chat template (tokenizer_config.json or chat_template.jinja) or
// by name (the config key chat_format): "qwen2.5" (ChatML with tools) or "deepseek-r1-distill". Any other template,
// or chat_format "jinja", is rendered by the template engine (tokenizer/chat_template.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/error.h"  // InputError, which the functions below throw
#include "tokenizer/conversation.h"
#include "tokenizer/tokenizer.h"

namespace qsft {

struct Encoded {
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;  // 1 = trained (assistant output), one per id
};

// Rendered text and the byte ranges of it that are trained.
struct RenderedText {
  std::string text;
  std::vector<ByteSpan> trained;  // sorted, not overlapping
  void add(std::string_view s, bool is_trained = false);
};

class ChatFormat {
 public:
  virtual ~ChatFormat() = default;
  virtual std::string name() const = 0;

  // The template's text for conv. Bad conversations (no messages, unknown roles, what the format cannot show):
  // InputError.
  std::string render(const Conversation& conv, bool add_generation_prompt) const;
  // Token ids of render(conv, false) and the trained mask: each token that overlaps an assistant turn's output
  // (for Qwen2.5, what TRL's training template marks with {% generation %}: "\n" + content + "<|im_end|>\n").
  Encoded encode(const Conversation& conv, const Tokenizer& tok) const;
  // A prompt-completion conversation (messages [0, prompt_messages) are the prompt): the ids of the whole
  // conversation, trained from where they stop agreeing with the ids of the prompt rendered with the generation
  // prompt. This is TRL's completion mask wherever its assumption holds (the prompt's ids are a prefix of the
  // whole's); where a template renders earlier text differently (DeepSeek's "<think>\n" generation prompt) the
  // completion starts at the first token that differs.
  Encoded encode_completion(const Conversation& conv, size_t prompt_messages, const Tokenizer& tok) const;

  // The format of the model in model_dir: forced_name if given, else the one whose template the model has.
  static std::unique_ptr<ChatFormat> for_model(const std::string& model_dir, const std::string& forced_name);
  static std::unique_ptr<ChatFormat> by_name(const std::string& name);
  static std::vector<std::string> names();

 protected:
  virtual void render_into(const Conversation& conv, bool add_generation_prompt, RenderedText& out) const = 0;
};

}  // namespace qsft
