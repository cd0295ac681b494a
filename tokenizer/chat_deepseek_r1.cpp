// DeepSeek-R1-Distill, as its chat template renders it: BOS, the (last) system prompt, then <｜User｜> and
// <｜Assistant｜> turns; an assistant turn keeps only what follows its last </think> (its reasoning_content is not
// shown) and ends with <｜end▁of▁sentence｜>. The template's tool-call branches emit tokens the distilled tokenizer
// does not have, so tool calls and tool messages are refused.
#include "engine/base/error.h"
#include "tokenizer/chat_formats.h"

namespace qsft {

namespace {

class DeepSeekR1Format : public ChatFormat {
 public:
  DeepSeekR1Format(bool think_in_generation_prompt, std::string bos)
      : think_in_generation_prompt_(think_in_generation_prompt), bos_(std::move(bos)) {}
  std::string name() const override { return "deepseek-r1-distill"; }

 protected:
  void render_into(const Conversation& conv, bool add_generation_prompt, RenderedText& out) const override {
    if (conv.messages.empty()) throw InputError("conversation has no messages");
    if (!conv.tools_json.empty()) throw unsupported("tools");
    std::string_view system;
    for (const Message& m : conv.messages)
      if (m.role == "system") system = printed_content(m);
    out.add(bos_);
    out.add(system);
    for (size_t i = 0; i < conv.messages.size(); ++i) {
      const Message& m = conv.messages[i];
      const std::string field = "messages[" + std::to_string(i) + "]";
      if (m.role == "user") {
        out.add("<｜User｜>");
        out.add(added_content(m, i));
      } else if (m.role == "assistant") {
        if (!m.tool_calls.empty()) throw unsupported(field + ".tool_calls");
        if (m.content_null) continue;  // the template renders an assistant turn with null content as its tool calls
        std::string_view content = m.content;
        if (size_t think_end = content.rfind("</think>"); think_end != std::string_view::npos)
          content.remove_prefix(think_end + std::string_view("</think>").size());
        out.add("<｜Assistant｜>");
        out.add(content, true);
        out.add("<｜end▁of▁sentence｜>", true);
      } else if (m.role == "tool") {
        throw unsupported(field + " (role tool)");
      } else if (m.role != "system") {
        throw InputError(field + ".role: '" + m.role + "' is not one of system, user, assistant");
      }
    }
    if (add_generation_prompt) out.add(think_in_generation_prompt_ ? "<｜Assistant｜><think>\n" : "<｜Assistant｜>");
  }

 private:
  static InputError unsupported(const std::string& what) {
    return InputError(what + ": the deepseek-r1-distill chat format has no tool support");
  }
  bool think_in_generation_prompt_;
  std::string bos_;
};

}  // namespace

std::unique_ptr<ChatFormat> make_deepseek_r1_format(bool think_in_generation_prompt, std::string bos) {
  return std::make_unique<DeepSeekR1Format>(think_in_generation_prompt, std::move(bos));
}

}  // namespace qsft
