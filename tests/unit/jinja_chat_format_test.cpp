// The chat format "jinja" (tokenizer/chat_template.h): the engine renders the same bytes as the native Qwen2.5
// and DeepSeek-R1-Distill renderers over the shared SFT conversations; a template without a native renderer
// (Qwen3) is chosen automatically; the trained spans follow the generic rule (after the generation prompt,
// through the end-of-turn text), including turns the template renders differently once later turns follow.
#include <fstream>

#include "engine/base/error.h"
#include "chat_test_util.h"
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
    auto engine = dir == kQwen ? ChatFormat::for_model(dir.string(), "jinja")
                               : make_jinja_format(test::read_file(dir / "chat_template.jinja"), "deepseek",
                                                   deepseek_vars);
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
  EXPECT_EQ(trained_runs(engine->encode(conv, tok), tok),
            (std::vector<std::string>{"4<|im_end|>\n",
                                      "<tool_call>\n{\"name\": \"w\", \"arguments\": {\"c\": \"Köln\"}}\n</tool_call><|im_end|>\n",
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

TEST(JinjaChatFormat, TemplateErrorsNameTheSource) {
  try {
    make_jinja_format("{% for m in messages %}\n{{ m.role }", "model/chat_template.jinja", {});
    FAIL() << "an unclosed expression must be an error";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "model/chat_template.jinja: chat template line 2: expression not closed ('}}' missing)");
  }
  auto chat = make_jinja_format("{{ raise_exception('only user turns') if messages[0].role != 'user' }}", "t.jinja", {});
  EXPECT_THROW(chat->render(conversation(R"({"messages": [{"role": "assistant", "content": "x"}]})"), false), InputError);
}

}  // namespace
}  // namespace qsft
