// The chat format "jinja" (tokenizer/chat_template.h): the engine renders the same bytes as the native Qwen2.5
// and DeepSeek-R1-Distill renderers over the shared SFT conversations; a template without a native renderer
// (Qwen3) is chosen automatically; the trained spans follow the generic rule (after the generation prompt,
// through the end-of-turn text), including turns the template renders differently once later turns follow.
#include <fstream>

#include "chat_test_util.h"
#include "engine/base/error.h"
#include "test_util.h"
#include "tokenizer/chat_format.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/conversation_json.h"

namespace qsft {
namespace {

namespace fs = std::filesystem;

const fs::path kQwen = test::shared_testdata() / "qwen2.5";
const fs::path kDeepSeek = test::shared_testdata() / "deepseek-r1-distill-qwen";
const fs::path kQwen3 = test::shared_testdata() / "qwen3";

using test::conversation;
using test::trained_runs;

// The conversations of the shared OpenAI-format tool-call file.
std::vector<Conversation> glaive_conversations() {
  std::vector<Conversation> out;
  std::ifstream in(test::shared_testdata() / "sft" / "glaive_toolcall_en_openai.jsonl");
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n)
    if (!line.empty()) out.push_back(parse_conversation_json(line, "glaive line " + std::to_string(n)));
  return out;
}

TEST(JinjaChatFormat, EngineRendersWhatTheNativeFormatsRender) {
  QSFT_REQUIRE_PATH(kQwen);
  QSFT_REQUIRE_PATH(kDeepSeek);
  std::vector<Conversation> convs = glaive_conversations();
  ASSERT_GT(convs.size(), 100u);
  for (const fs::path& dir : {kQwen, kDeepSeek}) {
    auto native = ChatFormat::for_model(dir.string(), "");
    // The shared DeepSeek folder has no tokenizer_config.json: give the engine the model's BOS token, which the
    // native format assumes.
    ChatTemplateVariables deepseek_vars;
    deepseek_vars.bos_token = "<｜begin▁of▁sentence｜>";
    auto engine = dir == kQwen
                      ? ChatFormat::for_model(dir.string(), "jinja")
                      : make_jinja_format(test::read_file(dir / "chat_template.jinja"), "deepseek", deepseek_vars);
    EXPECT_NE(native->name(), "jinja");
    EXPECT_EQ(engine->name(), "jinja");
    size_t compared = 0;
    for (Conversation conv : convs) {
      if (dir == kDeepSeek) {  // the native DeepSeek format refuses tools: compare the text-only part
        conv.tools_json.clear();
        std::erase_if(conv.messages, [](const Message& m) { return m.role == "tool" || !m.tool_calls.empty(); });
      }
      for (bool gen : {false, true}) {
        ASSERT_EQ(engine->render(conv, gen), native->render(conv, gen)) << dir;
        ++compared;
      }
    }
    EXPECT_EQ(compared, 2 * convs.size());
  }
}

TEST(JinjaChatFormat, GenericTrainedSpansFollowTheGenerationPrompt) {
  QSFT_REQUIRE_PATH(kQwen);
  Tokenizer tok = Tokenizer::load(kQwen.string());
  auto engine = ChatFormat::for_model(kQwen.string(), "jinja");
  Conversation conv = conversation(R"({"messages": [{"role": "user", "content": "2+2?"},
      {"role": "assistant", "content": "4"}, {"role": "user", "content": "weather?"},
      {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "w", "arguments": {"c": "Köln"}}}]},
      {"role": "tool", "content": "rain"}, {"role": "assistant", "content": "Rain."}]})");
  // The native format also trains the "\n" that the generation prompt "<|im_start|>assistant\n" ends with.
  EXPECT_EQ(
      trained_runs(engine->encode(conv, tok), tok),
      (std::vector<std::string>{
          "4<|im_end|>\n", "<tool_call>\n{\"name\": \"w\", \"arguments\": {\"c\": \"Köln\"}}\n</tool_call><|im_end|>\n",
          "Rain.<|im_end|>\n"}));
  auto native = ChatFormat::for_model(kQwen.string(), "");
  EXPECT_EQ(trained_runs(native->encode(conv, tok), tok)[0], "\n4<|im_end|>\n");
  // The Qwen2.5 template cannot render zero messages (it reads messages[0]): a first assistant turn starts at its
  // content.
  Conversation assistant_first = conversation(R"({"messages": [{"role": "assistant", "content": "Hi!"},
      {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})");
  EXPECT_EQ(trained_runs(engine->encode(assistant_first, tok), tok),
            (std::vector<std::string>{"Hi!<|im_end|>\n", "a<|im_end|>\n"}));
}

TEST(JinjaChatFormat, Qwen3UsesTheEngineAndTrainsEarlierTurnsAsRendered) {
  QSFT_REQUIRE_PATH(kQwen3);
  Tokenizer tok = Tokenizer::load(kQwen3.string());
  auto chat = ChatFormat::for_model(kQwen3.string(), "");
  EXPECT_EQ(chat->name(), "jinja");
  Conversation conv = conversation(R"({"messages": [{"role": "system", "content": "S"},
      {"role": "user", "content": "q1"}, {"role": "assistant", "content": "<think>\nr1\n</think>\n\nA1"},
      {"role": "user", "content": "q2"}, {"role": "assistant", "content": "<think>\nr2\n</think>\n\nA2"}]})");
  EXPECT_EQ(chat->render(conv, false),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
            "<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n<think>\nr2\n</think>\n\nA2<|im_end|>\n");
  // The first turn's reasoning is not in the text (Qwen3 drops it before the last user message): its span is the
  // answer and the end-of-turn text, found through the sentinel render.
  EXPECT_EQ(trained_runs(chat->encode(conv, tok), tok),
            (std::vector<std::string>{"A1<|im_end|>\n", "<think>\nr2\n</think>\n\nA2<|im_end|>\n"}));
}

// What the Conversation carries beyond role and content reaches the template as jinja2 would see the raw
// message: reasoning_content, a tool call's id, null content as None; reasoning and tool_call content parts are
// those fields.
TEST(JinjaChatFormat, MessagesCarryReasoningToolCallIdsAndNullContent) {
  auto chat = make_jinja_format(
      "{% for m in messages %}{{ m.role }}:{{ m.content is none }}:{{ m.reasoning_content | default('-') }}:"
      "{% for c in m.tool_calls or [] %}{{ c.id | default('-') }}={{ c.function.name }}{% endfor %};{% endfor %}",
      "t.jinja", {});
  EXPECT_EQ(chat->render(conversation(R"({"messages": [{"role": "user", "content": "q"},
      {"role": "assistant", "content": null, "reasoning_content": "r",
       "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {}}},
                      {"function": {"name": "g", "arguments": {}}}]}]})"),
                         false),
            "user:False:-:;assistant:True:r:call_1=f-=g;");
  EXPECT_EQ(chat->render(conversation(R"({"messages": [{"role": "user", "content": "q"},
      {"role": "assistant", "content": [{"type": "reasoning", "value": "r1"}, {"type": "text", "text": "A"},
       {"type": "reasoning", "text": "r2"},
       {"type": "tool_call", "value": "{\"name\": \"f\", \"arguments\": {}}"}]}]})"),
                         false),
            "user:False:-:;assistant:False:r1r2:-=f;");
  EXPECT_THROW(conversation(R"({"messages": [{"role": "assistant", "reasoning_content": "a",
      "content": [{"type": "reasoning", "value": "b"}]}]})"),
               InputError);
}

// Qwen3 renders reasoning_content as jinja2 does; the native Qwen2.5 and DeepSeek formats show no reasoning and
// agree with their templates on it and on null content.
TEST(JinjaChatFormat, ReasoningContentNativeAndEngineAgree) {
  QSFT_REQUIRE_PATH(kQwen);
  QSFT_REQUIRE_PATH(kDeepSeek);
  QSFT_REQUIRE_PATH(kQwen3);
  Conversation conv = conversation(R"({"messages": [{"role": "user", "content": "q1"},
      {"role": "assistant", "reasoning_content": "r1", "content": "A1"}, {"role": "user", "content": "q2"},
      {"role": "assistant", "reasoning_content": "\nr2\n", "content": "\nA2"}]})");
  auto qwen3 = ChatFormat::for_model(kQwen3.string(), "");
  const std::string text =
      "<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nq2<|im_end|>\n"
      "<|im_start|>assistant\n<think>\nr2\n</think>\n\nA2<|im_end|>\n";
  EXPECT_EQ(qwen3->render(conv, false), text);
  // The first turn's span is found through the sentinel render, made with the same generation prompt.
  EXPECT_EQ(qwen3->render(conv, true), text + "<|im_start|>assistant\n");
  ChatTemplateVariables deepseek_vars;
  deepseek_vars.bos_token = "<｜begin▁of▁sentence｜>";
  auto deepseek_engine =
      make_jinja_format(test::read_file(kDeepSeek / "chat_template.jinja"), "deepseek", deepseek_vars);
  Conversation with_null = conv;
  with_null.messages.push_back(conversation(R"({"messages": [{"role": "assistant", "content": null}]})").messages[0]);
  auto qwen_native = ChatFormat::for_model(kQwen.string(), "");
  auto qwen_engine = ChatFormat::for_model(kQwen.string(), "jinja");
  EXPECT_EQ(qwen_native->render(conv, false), qwen_engine->render(conv, false));
  // Qwen2.5's template adds the content to a string: null content is an error in jinja2, so in both.
  EXPECT_THROW(qwen_engine->render(with_null, false), InputError);
  EXPECT_THROW(qwen_native->render(with_null, false), InputError);
  auto deepseek_native = ChatFormat::for_model(kDeepSeek.string(), "");
  EXPECT_EQ(deepseek_native->render(conv, true), deepseek_engine->render(conv, true));
  // DeepSeek's template renders an assistant turn with null content as its tool calls: here nothing (the engine
  // finds no trained span in it, so only the native text is compared).
  EXPECT_EQ(deepseek_native->render(with_null, true), deepseek_native->render(conv, true));
}

TEST(JinjaChatFormat, TemplateErrorsNameTheSource) {
  try {
    make_jinja_format("{% for m in messages %}\n{{ m.role }", "model/chat_template.jinja", {});
    FAIL() << "an unclosed expression must be an error";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()),
              "model/chat_template.jinja: chat template line 2: expression not closed ('}}' missing)");
  }
  auto chat =
      make_jinja_format("{{ raise_exception('only user turns') if messages[0].role != 'user' }}", "t.jinja", {});
  EXPECT_THROW(chat->render(conversation(R"({"messages": [{"role": "assistant", "content": "x"}]})"), false),
               InputError);
}

}  // namespace
}  // namespace qsft
