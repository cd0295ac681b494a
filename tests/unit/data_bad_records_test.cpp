// Every kind of bad record is reported with file, line (or record index), field and reason; on_bad_record: skip
// counts them and keeps the first few; config errors name the key and the nearest valid one.
#include <fstream>

#include "data/dataset.h"
#include "data/progress.h"
#include "engine/train/progress.h"  // in one file with data/progress.h: the two classes once shared a name (ODR)
#include "engine/base/error.h"
#include "engine/base/nearest_key.h"
#include "test_util.h"

namespace qsft {
namespace {

namespace fs = std::filesystem;

const fs::path kQwen = test::shared_testdata() / "qwen2.5";

struct BadCase {
  const char* name;
  const char* file;
  std::string content;
  std::vector<std::string> expected;  // substrings of the message
  std::string config;                 // extra DataConfig: "template" sets a prompt template
};

const std::string kGood = R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})";

std::vector<BadCase> cases() {
  return {
      {"malformed JSON line", "a.jsonl", kGood + "\n{\"messages\": [\n", {"a.jsonl line 2", "not valid JSON"}, ""},
      {"unknown role", "a.jsonl", kGood + "\n" + R"({"messages": [{"role": "bot", "content": "x"}]})",
       {"a.jsonl line 2", "messages[0].role", "unknown role 'bot'"}, ""},
      {"unknown sharegpt role", "s.json",
       R"([{"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]},)" "\n"
       R"( {"conversations": [{"from": "human", "value": "a"}, {"from": "robot", "value": "b"}]}])",
       {"s.json record 1 (line 2)", "conversations[1].from", "unknown role 'robot'"}, ""},
      {"missing field", "a.json", R"([{"instruction": "a", "output": "b"},)" "\n" R"( {"output": "b", "input": ""}])",
       {"a.json record 1 (line 2)", "instruction: missing"}, ""},
      {"wrongly typed field", "a.jsonl", kGood + "\n" + R"({"messages": [{"role": "user", "content": 5}]})",
       {"a.jsonl line 2", "messages[0].content", "got a number"}, ""},
      {"empty conversation", "a.jsonl", kGood + "\n\n" + R"({"messages": []})",
       {"a.jsonl line 3", "messages: empty conversation"}, ""},
      {"template field absent", "t.json", R"([{"Question": "q", "Response": "r"}, {"Question": "q"}])",
       {"t.json record 1", "Response", "no such field"}, "template"},
      {"assistant with neither content nor tool_calls", "a.jsonl",
       kGood + "\n" + R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": null}]})",
       {"a.jsonl line 2", "messages[1]", "neither content nor tool_calls"}, ""},
  };
}

class BadRecords : public test::TempDirTest {
 protected:
  void SetUp() override {
    if (!fs::exists(kQwen)) GTEST_SKIP() << "skipped: " << kQwen << " is absent (shared test data)";
    TempDirTest::SetUp();
  }
  DataConfig config(const BadCase& c, const std::string& on_bad) {
    std::ofstream(dir_ / c.file) << c.content;
    DataConfig cfg;
    cfg.train_files = {(dir_ / c.file).string()};
    cfg.cache_dir = (dir_ / "cache").string();
    cfg.on_bad_record = on_bad;
    if (c.config == "template") cfg.completion_template = "{Question} {Response}";
    return cfg;
  }
};

TEST_F(BadRecords, EachIsAnErrorNamingFileLineFieldAndReason) {
  for (const BadCase& c : cases()) {
    try {
      prepare_data(config(c, "error"), kQwen.string(), false);
      ADD_FAILURE() << c.name << ": no error";
    } catch (const InputError& e) {
      for (const std::string& part : c.expected)
        EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << c.name << ": " << e.what();
    }
  }
}

TEST_F(BadRecords, SkipCountsThemAndKeepsTheRest) {
  for (const BadCase& c : cases()) {
    PreparedData d = prepare_data(config(c, "skip"), kQwen.string(), false);
    EXPECT_EQ(d.stats.bad_records, 1) << c.name;
    EXPECT_EQ(d.train.size(), 1u) << c.name;
    ASSERT_EQ(d.stats.bad_examples.size(), 1u) << c.name;
    EXPECT_NE(d.stats.bad_examples[0].find(c.expected[0]), std::string::npos) << c.name << ": " << d.stats.bad_examples[0];
    EXPECT_NE(d.stats.report().find("bad records (first 1)"), std::string::npos);
  }
}

TEST_F(BadRecords, BrokenFileStructureIsAnError) {
  std::ofstream(dir_ / "x.json") << "[" << kGood << ",\n" << kGood;
  DataConfig cfg;
  cfg.train_files = {(dir_ / "x.json").string()};
  cfg.cache_dir = (dir_ / "cache").string();
  cfg.on_bad_record = "skip";
  EXPECT_THROW(
      {
        try {
          prepare_data(cfg, kQwen.string(), false);
        } catch (const InputError& e) {
          EXPECT_NE(std::string(e.what()).find("not closed"), std::string::npos) << e.what();
          throw;
        }
      },
      InputError);
}

TEST(DataProgress, IsNotTheTrainersProgress) { static_assert(!std::is_same_v<DataProgress, Progress>); }

TEST(DataConfigParse, KeysValuesAndPaths) {
  DataConfig c = parse_data_config(R"({"train_files": ["a.jsonl", "/abs/b.json"], "max_length": 2048,
      "truncation": "split", "eval_split": 0.05, "packing": false})", "cfg.json", "/base");
  EXPECT_EQ(c.train_files, (std::vector<std::string>{"/base/a.jsonl", "/abs/b.json"}));
  EXPECT_EQ(c.max_length, 2048);
  EXPECT_EQ(c.truncation, "split");
  EXPECT_FALSE(c.packing);
  try {
    parse_data_config(R"({"train_files": "a", "max_lenght": 5})", "cfg.json", "/base");
    ADD_FAILURE();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "cfg.json: unknown key data.max_lenght (did you mean data.max_length?)");
  }
  EXPECT_THROW(parse_data_config(R"({"train_files": "a", "truncation": "middle"})", "c", "/"), InputError);
  EXPECT_THROW(parse_data_config(R"({"train_files": "a", "max_length": "long"})", "c", "/"), InputError);
  EXPECT_THROW(parse_data_config(R"({"max_length": 5})", "c", "/"), InputError);
  EXPECT_EQ(nearest_key("lora_rnak", {"lora_rank", "lora_alpha"}), "lora_rank");
  EXPECT_EQ(nearest_key("zzzzzz", {"lora_rank"}), "");
}

}  // namespace
}  // namespace qsft
