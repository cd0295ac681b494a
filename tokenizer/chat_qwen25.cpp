// Qwen2.5 ChatML, as the Qwen2.5-Instruct chat template renders it: a system turn (the default system prompt
// when the conversation has none; the tools block when tools are given), user/assistant turns, assistant tool
// calls as <tool_call> JSON, tool results as <tool_response> inside one user turn. The template shows no
// reasoning_content.
#include "engine/base/error.h"
#include "engine/base/json_text.h"
#include "tokenizer/chat_formats.h"

namespace qsft {

namespace {

constexpr std::string_view kDefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
constexpr std::string_view kToolsIntro =
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
constexpr std::string_view kToolsOutro =
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\n</tool_call><|im_end|>\n";

class Qwen25Format : public ChatFormat {
 public:
  std::string name() const override { return "qwen2.5"; }

 protected:
  void render_into(const Conversation& conv, bool add_generation_prompt, RenderedText& out) const override {
    const auto& msgs = conv.messages;
    if (msgs.empty()) throw InputError("conversation has no messages");
    bool first_is_system = msgs[0].role == "system";
    std::string_view system = !first_is_system          ? kDefaultSystem
                              : conv.tools_json.empty() ? std::string_view(added_content(msgs[0], 0))
                                                        : printed_content(msgs[0]);
    if (!conv.tools_json.empty()) {
      out.add("<|im_start|>system\n");
      out.add(system);
      out.add(kToolsIntro);
      for (size_t i = 0; i < conv.tools_json.size(); ++i) {
        out.add("\n");
        out.add(python_json(conv.tools_json[i], "tools[" + std::to_string(i) + "]"));
      }
      out.add(kToolsOutro);
    } else {
      out.add("<|im_start|>system\n");
      out.add(system);
      out.add("<|im_end|>\n");
    }
    for (size_t i = 0; i < msgs.size(); ++i) {
      const Message& m = msgs[i];
      if (m.role == "user" || (m.role == "system" && i > 0)) {
        out.add("<|im_start|>" + m.role + "\n");
        out.add(added_content(m, i));
        out.add("<|im_end|>\n");
      } else if (m.role == "assistant") {
        out.add("<|im_start|>assistant");
        render_assistant(m, i, out);
      } else if (m.role == "tool") {
        if (i == 0 || msgs[i - 1].role != "tool") out.add("<|im_start|>user");
        out.add("\n<tool_response>\n");
        out.add(printed_content(m));
        out.add("\n</tool_response>");
        if (i + 1 == msgs.size() || msgs[i + 1].role != "tool") out.add("<|im_end|>\n");
      } else if (m.role != "system") {
        throw InputError("messages[" + std::to_string(i) + "].role: '" + m.role +
                         "' is not one of system, user, assistant, tool");
      }
    }
    if (add_generation_prompt) out.add("<|im_start|>assistant\n");
  }

 private:
  // Everything after "<|im_start|>assistant" is the assistant's output (trained).
  static void render_assistant(const Message& m, size_t index, RenderedText& out) {
    if (!m.content.empty() || m.tool_calls.empty()) {
      out.add("\n", true);
      out.add(m.tool_calls.empty() ? added_content(m, index) : m.content, true);
    }
    for (size_t k = 0; k < m.tool_calls.size(); ++k) {
      const ToolCall& call = m.tool_calls[k];
      out.add("\n<tool_call>\n{\"name\": \"", true);
      out.add(call.name, true);
      out.add("\", \"arguments\": ", true);
      out.add(python_json(call.arguments_json,
                          "messages[" + std::to_string(index) + "].tool_calls[" + std::to_string(k) + "].arguments"),
              true);
      out.add("}\n</tool_call>", true);
    }
    out.add("<|im_end|>\n", true);
  }
};

}  // namespace

std::unique_ptr<ChatFormat> make_qwen25_format() { return std::make_unique<Qwen25Format>(); }

}  // namespace qsft
