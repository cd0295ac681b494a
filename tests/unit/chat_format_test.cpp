// Chat formats: the shared Qwen2.5 chat-template vectors (text and ids), the trained mask, recognition of the
// model's template, DeepSeek-R1-Distill's reasoning removal, and errors for what a format cannot show.
#include <simdjson.h>

#include "chat_test_util.h"
#include "engine/base/error.h"
#include "engine/base/json_text.h"
#include "test_util.h"
#include "tokenizer/chat_format.h"
#include "tokenizer/conversation_json.h"

namespace qsft {
namespace {

namespace fs = std::filesystem;

const fs::path kQwen = test::shared_testdata() / "qwen2.5";
const fs::path kDeepSeek = test::shared_testdata() / "deepseek-r1-distill-qwen";

using test::conversation;
using test::trained_runs;

TEST(ChatFormat, Qwen25SharedVectors) {
  QSFT_REQUIRE_PATH(kQwen);
  Tokenizer tok = Tokenizer::load(kQwen.string());
  auto chat = ChatFormat::for_model(kQwen.string(), "");
  ASSERT_EQ(chat->name(), "qwen2.5");
  simdjson::dom::parser parser;
  simdjson::dom::element doc =
      parser.load((test::shared_testdata() / "vectors" / "qwen2.5-chat-template.json").string());
  int cases = 0;
  for (simdjson::dom::element c : doc["cases"].get_array()) {
    Conversation conv = conversation(simdjson::minify(c));
    bool gen = bool(c["add_generation_prompt"]);
    std::vector<int32_t> want;
    for (simdjson::dom::element id : c["ids"].get_array()) want.push_back(static_cast<int32_t>(int64_t(id)));
    std::string text = chat->render(conv, gen);
    EXPECT_EQ(text, std::string_view(c["text"])) << std::string_view(c["name"]);
    EXPECT_EQ(tok.encode(text), want) << std::string_view(c["name"]);
    if (!gen) {
      EXPECT_EQ(chat->encode(conv, tok).ids, want) << std::string_view(c["name"]);
    }
    ++cases;
  }
  EXPECT_EQ(cases, 5);
}

TEST(ChatFormat, Qwen25MaskCoversAssistantOutput) {
  QSFT_REQUIRE_PATH(kQwen);
  Tokenizer tok = Tokenizer::load(kQwen.string());
  auto chat = ChatFormat::by_name("qwen2.5");
  Conversation conv = conversation(R"({"messages": [{"role": "user", "content": "2+2?"},
      {"role": "assistant", "content": "4 😀"}, {"role": "user", "content": "call f"},
      {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]},
      {"role": "tool", "content": "ok"}]})");
  Encoded e = chat->encode(conv, tok);
  ASSERT_EQ(e.mask.size(), e.ids.size());
  EXPECT_EQ(trained_runs(e, tok),
            (std::vector<std::string>{
                "\n4 😀<|im_end|>\n",
                "\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call><|im_end|>\n"}));
}

TEST(ChatFormat, CompletionMaskStartsAfterTheGenerationPrompt) {
  QSFT_REQUIRE_PATH(kQwen);
  Tokenizer tok = Tokenizer::load(kQwen.string());
  auto chat = ChatFormat::by_name("qwen2.5");
  size_t prompt_messages = 0;
  Conversation conv = parse_conversation_json(R"({"prompt": [{"role": "user", "content": "2+2?"}],
      "completion": [{"role": "assistant", "content": "4"}]})",
                                              "test", &prompt_messages);
  ASSERT_EQ(prompt_messages, 1u);
  Encoded e = chat->encode_completion(conv, prompt_messages, tok);
  EXPECT_EQ(e.ids, chat->encode(conv, tok).ids);
  EXPECT_EQ(trained_runs(e, tok), (std::vector<std::string>{"4<|im_end|>\n"}));
  EXPECT_THROW(chat->encode_completion(conv, 0, tok), InputError);
  EXPECT_THROW(parse_conversation_json(R"({"prompt": [], "completion": []})", "test"), InputError);
}

TEST(ChatFormat, RecognisesTemplates) {
  QSFT_REQUIRE_PATH(kDeepSeek);
  EXPECT_EQ(ChatFormat::for_model(kDeepSeek.string(), "")->name(), "deepseek-r1-distill");
  EXPECT_EQ(ChatFormat::for_model(kDeepSeek.string(), "qwen2.5")->name(), "qwen2.5");
  // A template without a native format (Qwen3) is rendered by the template engine (jinja_chat_format_test.cpp).
  EXPECT_EQ(ChatFormat::for_model((test::shared_testdata() / "qwen3").string(), "")->name(), "jinja");
  EXPECT_THROW(ChatFormat::by_name("llama3"), InputError);
}

TEST(ChatFormat, DeepSeekKeepsTheAnswerAfterTheLastThink) {
  QSFT_REQUIRE_PATH(kDeepSeek);
  Tokenizer tok = Tokenizer::load(kDeepSeek.string());
  auto chat = ChatFormat::for_model(kDeepSeek.string(), "");
  Conversation conv = conversation(R"({"messages": [{"role": "system", "content": "S"},
      {"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>a</think>b</think>answer"}]})");
  std::string text = chat->render(conv, false);
  EXPECT_EQ(text.find("<think>"), std::string::npos);
  EXPECT_TRUE(text.starts_with("<｜begin▁of▁sentence｜>S<｜User｜>q<｜Assistant｜>answer")) << text;
  Encoded e = chat->encode(conv, tok);
  EXPECT_EQ(e.ids.front(), tok.bos_id());
  EXPECT_EQ(trained_runs(e, tok), (std::vector<std::string>{"answer<｜end▁of▁sentence｜>"}));
  EXPECT_TRUE(chat->render(conv, true).ends_with("<｜Assistant｜><think>\n"));
  EXPECT_THROW(chat->render(conversation(R"({"messages": [{"role": "tool", "content": "x"}]})"), false), InputError);
}

TEST(ChatFormat, BadConversationsAreInputErrors) {
  auto chat = ChatFormat::by_name("qwen2.5");
  EXPECT_THROW(chat->render(conversation(R"({"messages": []})"), false), InputError);
  EXPECT_THROW(chat->render(conversation(R"({"messages": [{"role": "bot", "content": "x"}]})"), false), InputError);
  EXPECT_THROW(conversation(R"({"messages": [{"content": "x"}]})"), InputError);
  EXPECT_THROW(conversation(R"({"messages": [{"role": "user", "content": [{"type": "text"}]}]})"), InputError);
}

TEST(ChatFormat, PythonJsonKeepsKeyOrderAndIsStable) {
  std::string once = python_json(R"({"z":1,"a":[1.5,2e-7,1e16,true,null],"é":"\"q\"\n"})", "test");
  EXPECT_LT(once.find("\"z\""), once.find("\"a\""));
  EXPECT_EQ(python_json(once, "test"), once);
  EXPECT_THROW(python_json("{", "test"), InputError);
}

}  // namespace
}  // namespace qsft
