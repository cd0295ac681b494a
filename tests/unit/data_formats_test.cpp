// Each record format -> exact token ids and trained masks (expected ids from Hugging Face tokenizers +
// apply_chat_template on the Qwen2.5 tokenizer), loss-mask policies, EOS, truncation policies.
#include <algorithm>
#include <fstream>

#include "data/dataset.h"
#include "data/record_encoder.h"
#include "engine/io/tiny_tokenizer.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace qsft {
namespace {

namespace fs = std::filesystem;

const fs::path kQwen = test::shared_testdata() / "qwen2.5";
const fs::path kDeepSeek = test::shared_testdata() / "deepseek-r1-distill-qwen";

// Hi / Hello! with the default system prompt.
const std::vector<int32_t> kChatIds = {
    151644, 8948, 198,    2610, 525,    1207, 16948, 11,    3465,   553, 54364,  14817, 13,  1446, 525, 264,    10950,
    17847,  13,   151645, 198,  151644, 872,  198,   13048, 151645, 198, 151644, 77091, 198, 9707, 0,   151645, 198};
constexpr size_t kChatPromptLen = 29;  // through "<|im_start|>assistant"

class DataFormats : public test::TempDirTest {
 protected:
  void SetUp() override {
    if (!fs::exists(kQwen)) GTEST_SKIP() << "skipped: " << kQwen << " is absent (shared test data)";
    TempDirTest::SetUp();
  }

  PreparedData prepare(const std::string& name, const std::string& content, DataConfig cfg = {},
                       const fs::path& model = kQwen) {
    const fs::path file = dir_ / name;
    std::ofstream(file) << content;
    cfg.train_files = {file.string()};
    cfg.cache_dir = (dir_ / "cache").string();
    return prepare_data(cfg, model.string(), false);
  }
  static std::vector<int32_t> ids(const SequenceSet& s, size_t i) { return {s.ids(i).begin(), s.ids(i).end()}; }
  static std::vector<uint8_t> mask(const SequenceSet& s, size_t i) { return {s.mask(i).begin(), s.mask(i).end()}; }
  static std::vector<uint8_t> mask_from(size_t n, size_t first_trained) {
    std::vector<uint8_t> m(n, 0);
    for (size_t i = first_trained; i < n; ++i) m[i] = 1;
    return m;
  }
};

TEST_F(DataFormats, OpenAIMessagesWithTypedParts) {
  auto d = prepare("m.jsonl", R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]},)"
                              R"( {"role": "assistant", "content": "Hello!"}]})"
                              "\n");
  ASSERT_EQ(d.train.size(), 1u);
  EXPECT_EQ(ids(d.train, 0), kChatIds);
  EXPECT_EQ(mask(d.train, 0), mask_from(kChatIds.size(), kChatPromptLen));
  EXPECT_EQ(d.stats.files.at(0).format, "messages");
}

TEST_F(DataFormats, ShareGPTAndAlpacaRenderTheSameConversation) {
  auto s = prepare("s.json",
                   R"([{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}])");
  auto a = prepare("a.json", R"([{"instruction": "Hi", "input": "", "output": "Hello!"}])");
  EXPECT_EQ(ids(s.train, 0), kChatIds);
  EXPECT_EQ(ids(a.train, 0), kChatIds);
  EXPECT_EQ(mask(a.train, 0), mask_from(kChatIds.size(), kChatPromptLen));
  EXPECT_EQ(s.stats.files.at(0).format, "sharegpt");
  EXPECT_EQ(a.stats.files.at(0).format, "alpaca");
}

// FastChat and LLaMA-Factory also write user/assistant, and FastChat chatgpt, bard and bing, for human/gpt.
TEST_F(DataFormats, ShareGPTSpeakerVariants) {
  for (const std::string user : {"human", "user"})
    for (const std::string assistant : {"gpt", "assistant", "chatgpt", "bard", "bing"}) {
      auto s = prepare("s.json", R"([{"conversations": [{"from": ")" + user + R"(", "value": "Hi"}, {"from": ")" +
                                     assistant + R"(", "value": "Hello!"}]}])");
      EXPECT_EQ(ids(s.train, 0), kChatIds) << user << " / " << assistant;
    }
}

TEST_F(DataFormats, ShareGPTTurnsThatDoNotAlternateAreCountedInOneWarning) {
  const std::string twice = R"({"conversations": [{"from": "human", "value": "Hi"}, {"from": "human", "value": "Hi"},)"
                            R"( {"from": "gpt", "value": "Hello!"}]})";
  const std::string fine = R"({"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Hi"},)"
                           R"( {"from": "gpt", "value": "Hello!"}]})";
  testing::internal::CaptureStderr();
  auto s = prepare("s.jsonl", fine + "\n" + twice + "\n" + twice + "\n");
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(s.train.size(), 3u);
  EXPECT_NE(err.find("warning: 2 ShareGPT conversations do not alternate user and assistant turns (the first: " +
                     (dir_ / "s.jsonl").string() + " line 2)"),
            std::string::npos)
      << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

TEST_F(DataFormats, TextGetsEOSAndIsAllTrained) {
  auto d = prepare("t.jsonl", R"({"text": "Hello world"})"
                              "\n");
  EXPECT_EQ(ids(d.train, 0), (std::vector<int32_t>{9707, 1879, 151645}));
  EXPECT_EQ(mask(d.train, 0), (std::vector<uint8_t>{1, 1, 1}));
}

TEST_F(DataFormats, PromptCompletionStringsTrainTheCompletion) {
  auto d = prepare("pc.jsonl", R"({"prompt": "Q: 2+2?\nA:", "completion": " 4"})"
                               "\n");
  EXPECT_EQ(ids(d.train, 0), (std::vector<int32_t>{48, 25, 220, 17, 10, 17, 5267, 32, 25, 220, 19, 151645}));
  EXPECT_EQ(mask(d.train, 0), mask_from(12, 9));
  DataConfig all;
  all.loss_mask = "all";
  all.append_eos = false;
  auto d2 = prepare("pc.jsonl",
                    R"({"prompt": "Q: 2+2?\nA:", "completion": " 4"})"
                    "\n",
                    all);
  EXPECT_EQ(mask(d2.train, 0), mask_from(11, 0));
}

TEST_F(DataFormats, PromptCompletionMessagesTrainAfterTheGenerationPrompt) {
  auto d = prepare("pcm.jsonl", R"({"prompt": [{"role": "user", "content": "Hi"}], )"
                                R"("completion": [{"role": "assistant", "content": "Hello!"}]})"
                                "\n");
  EXPECT_EQ(ids(d.train, 0), kChatIds);
  EXPECT_EQ(mask(d.train, 0), mask_from(kChatIds.size(), 30));  // after "<|im_start|>assistant\n"
}

// DeepSeek-R1-Distill's generation prompt ends in "<think>\n", which the whole conversation does not have: the
// completion starts where the ids stop agreeing (after "<｜Assistant｜>"), not after as many ids as the prompt has.
TEST_F(DataFormats, PromptCompletionMessagesOnDeepSeekTrainTheWholeAnswer) {
  QSFT_REQUIRE_PATH(kDeepSeek);
  DataConfig cfg;
  cfg.eos_token = "<｜end▁of▁sentence｜>";
  auto d = prepare("pcd.jsonl",
                   R"({"prompt": [{"role": "user", "content": "Hi"}], )"
                   R"("completion": [{"role": "assistant", "content": "Hello there!"}]})"
                   "\n",
                   cfg, kDeepSeek);
  Tokenizer tok = Tokenizer::load(kDeepSeek.string());
  std::vector<int32_t> trained;
  for (size_t i = 0; i < d.train.ids(0).size(); ++i)
    if (d.train.mask(0)[i]) trained.push_back(d.train.ids(0)[i]);
  EXPECT_EQ(tok.decode(d.train.ids(0)),
            "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>Hello there!<｜end▁of▁sentence｜>");
  EXPECT_EQ(tok.decode(trained), "Hello there!<｜end▁of▁sentence｜>");
}

TEST_F(DataFormats, FieldTemplate) {
  DataConfig cfg;
  cfg.prompt_template = "诊断问题：{Question}\n详细分析：\n{Complex_CoT}\n### 答案：\n";
  cfg.completion_template = "{Response}";
  auto d = prepare("med.json", R"([{"Question": "头痛", "Complex_CoT": "想想", "Response": "休息", "other": 1}])", cfg);
  EXPECT_EQ(ids(d.train, 0), (std::vector<int32_t>{105262, 86119, 5122, 109180, 198, 100700, 101042, 28311, 105839, 198,
                                                   14374, 10236, 255, 242, 80642, 28311, 104393, 151645}));
  EXPECT_EQ(mask(d.train, 0), mask_from(18, 16));
  EXPECT_EQ(d.stats.files.at(0).format, "template");
}

TEST_F(DataFormats, PreTokenizedWithLabels) {
  auto d = prepare("tok.jsonl", R"({"input_ids": [1, 2, 3, 4], "labels": [-100, -100, 3, 4]})"
                                "\n"
                                R"({"input_ids": [5, 6]})"
                                "\n");
  EXPECT_EQ(ids(d.train, 0), (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(mask(d.train, 0), (std::vector<uint8_t>{0, 0, 1, 1}));
  EXPECT_EQ(mask(d.train, 1), (std::vector<uint8_t>{1, 1}));
}

TEST_F(DataFormats, CompletionMaskOnAConversationKeepsTheLastAnswer) {
  DataConfig cfg;
  cfg.loss_mask = "completion";
  auto d = prepare("m2.jsonl",
                   R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},)"
                   R"( {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]})"
                   "\n",
                   cfg);
  auto m = mask(d.train, 0);
  const size_t trained = size_t(std::count(m.begin(), m.end(), 1));
  EXPECT_EQ(trained, 4u);  // "\n", "d", "<|im_end|>", "\n"
  EXPECT_EQ(std::vector<uint8_t>(m.end() - 4, m.end()), (std::vector<uint8_t>{1, 1, 1, 1}));
}

TEST_F(DataFormats, TruncationPolicies) {
  const std::string rec = R"({"input_ids": [1, 2, 3, 4, 5, 6, 7]})"
                          "\n";
  DataConfig cfg;
  cfg.max_length = 3;
  auto keep = prepare("k.jsonl", rec, cfg);
  EXPECT_EQ(ids(keep.train, 0), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(keep.stats.truncated, 1);
  cfg.truncation = "split";
  auto split = prepare("s.jsonl", rec, cfg);
  ASSERT_EQ(split.train.size(), 2u);  // [1 2 3] [4 5 6]; [7] alone has no target and is reported
  EXPECT_EQ(ids(split.train, 1), (std::vector<int32_t>{4, 5, 6}));
  EXPECT_EQ(split.stats.dropped_no_trained, 1);
  cfg.truncation = "drop";
  auto drop = prepare("d.jsonl",
                      rec + R"({"input_ids": [1, 2]})"
                            "\n",
                      cfg);
  EXPECT_EQ(drop.train.size(), 1u);
  EXPECT_EQ(drop.stats.dropped_too_long, 1);
}

TEST_F(DataFormats, RecordWithNoTrainedTokenIsCountedAndNamed) {
  auto d = prepare("n.jsonl", R"({"input_ids": [1, 2], "labels": [-100, -100]})"
                              "\n"
                              R"({"input_ids": [1, 2]})"
                              "\n");
  EXPECT_EQ(d.train.size(), 1u);
  EXPECT_EQ(d.stats.dropped_no_trained, 1);
  ASSERT_EQ(d.stats.no_trained_examples.size(), 1u);
  EXPECT_NE(d.stats.no_trained_examples[0].find("n.jsonl line 1"), std::string::npos);
  EXPECT_NE(d.stats.report().find("no trained token"), std::string::npos);
}

// qwen-sft tokenize --chat's encoder: record by record, the ids and masks the pipeline makes of the same file, for
// the Qwen2.5 tokenizer and the demo's tiny one (init-model's), with and without keep_start truncation.
TEST_F(DataFormats, RecordEncoderGivesWhatThePipelineGives) {
  std::vector<std::string> demo;
  std::ifstream in(fs::path(QSFT_SOURCE_DIR) / "configs" / "data" / "demo_chat.jsonl");
  for (std::string line; demo.size() < 8 && std::getline(in, line);) demo.push_back(line);
  ASSERT_EQ(demo.size(), 8u);
  const std::vector<std::pair<std::string, std::vector<std::string>>> files = {
      {"demo.jsonl", demo},
      {"m.jsonl",
       {R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "2+2?"}]}, {"role": "assistant", )"
        R"("content": [{"type": "reasoning", "value": "add"}, {"type": "text", "value": "4"}]}]})"}},
      {"s.jsonl",
       {R"({"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}], "system": "S"})"}},
      {"a.jsonl",
       {R"({"instruction": "Say hi", "input": "", "output": "hi"})",
        R"({"instruction": "Count", "input": "to 3", "output": "1 2 3"})"}},
      {"p.jsonl", {R"({"prompt": "The sky is", "completion": " blue."})"}},
      {"t.jsonl", {R"({"text": "plain text, all trained"})"}},
  };
  const fs::path tiny = dir_ / "tiny";
  fs::create_directories(tiny);
  write_tiny_tokenizer(tiny, 2048);
  for (const fs::path& model : {kQwen, tiny}) {
    for (const auto& [name, records] : files) {
      std::string content;
      for (const std::string& r : records) content += r + "\n";
      DataConfig cfg;
      // Then every record cut by one token at least (keep_start truncation).
      for (bool truncated : {false, true}) {
        if (truncated) {
          RecordEncoder whole(DataConfig{}, model.string());
          cfg.max_length = 1 << 30;
          for (const std::string& r : records)
            cfg.max_length = std::min<int64_t>(cfg.max_length, int64_t(whole.encode(r).ids.size()) - 1);
        }
        PreparedData d = prepare(name, content, cfg, model);
        RecordEncoder encoder(cfg, model.string());
        size_t kept = 0;  // the pipeline keeps the sequences with a trained target (after the first token)
        for (size_t i = 0; i < records.size(); ++i) {
          const Encoded e = encoder.encode(records[i]);
          const std::string where = model.string() + " " + name + " record " + std::to_string(i) + " max_length " +
                                    std::to_string(cfg.max_length);
          EXPECT_LE(int64_t(e.ids.size()), cfg.max_length) << where;
          if (std::find(e.mask.begin() + 1, e.mask.end(), 1) == e.mask.end()) continue;
          ASSERT_LT(kept, d.train.size()) << where;
          EXPECT_EQ(e.ids, ids(d.train, kept)) << where;
          EXPECT_EQ(e.mask, mask(d.train, kept++)) << where;
        }
        EXPECT_EQ(kept, d.train.size()) << model << " " << name;
        if (!truncated) {
          EXPECT_EQ(kept, records.size()) << model << " " << name;
        }
        fs::remove_all(dir_ / "cache");
      }
    }
  }
}

// Content parts: reasoning parts are the message's reasoning_content and tool_call parts its tool_calls, as the
// chat template (Qwen3's, through the Jinja engine) reads them.
TEST_F(DataFormats, ReasoningAndToolCallPartsAreTheMessageFields) {
  const fs::path qwen3 = test::shared_testdata() / "qwen3";
  QSFT_REQUIRE_PATH(qwen3);
  const std::string tools = R"("tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}])";
  const std::string parts = R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [)"
                            R"({"type": "reasoning", "value": "think"}, {"type": "text", "text": "A"}, )"
                            R"({"type": "tool_call", "value": {"name": "f", "arguments": {"x": 1}}}]}], )" +
                            tools + "}";
  const std::string fields =
      R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "reasoning_content": "think", )"
      R"("content": "A", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]}], )" +
      tools + "}";
  const std::string inline_think =
      R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", )"
      R"("content": "<think>\nthink\n</think>\n\nA", "tool_calls": [{"type": "function", "function": )"
      R"({"name": "f", "arguments": {"x": 1}}}]}], )" +
      tools + "}";
  DataConfig cfg;
  RecordEncoder encoder(cfg, qwen3.string());
  const Encoded a = encoder.encode(parts), b = encoder.encode(fields), c = encoder.encode(inline_think);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.mask, b.mask);
  // Qwen3 renders reasoning_content as the <think> block it would split off the content.
  EXPECT_EQ(a.ids, c.ids);
  Tokenizer tok = Tokenizer::load(qwen3.string());
  EXPECT_NE(tok.decode(a.ids, false).find("<think>\nthink\n</think>\n\nA\n<tool_call>"), std::string::npos)
      << tok.decode(a.ids, false);
}

}  // namespace
}  // namespace qsft
