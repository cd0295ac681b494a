// Every kind of bad record is reported with file, line (or record index), field and reason; on_bad_record: skip
// counts them and keeps the first few; config errors name the key and the nearest valid one.
#include <fstream>

#include "data/dataset.h"
#include "data/progress.h"
#include "engine/base/error.h"
#include "engine/base/nearest_key.h"
#include "engine/train/progress.h"  // in one file with data/progress.h: the two classes once shared a name (ODR)
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
      {"unknown role",
       "a.jsonl",
       kGood + "\n" + R"({"messages": [{"role": "bot", "content": "x"}]})",
       {"a.jsonl line 2", "messages[0].role", "unknown role 'bot'"},
       ""},
      {"unknown sharegpt role",
       "s.json",
       R"([{"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]},)"
       "\n"
       R"( {"conversations": [{"from": "human", "value": "a"}, {"from": "robot", "value": "b"}]}])",
       {"s.json record 1 (line 2)", "conversations[1].from", "unknown role 'robot'"},
       ""},
      {"missing field",
       "a.json",
       R"([{"instruction": "a", "output": "b"},)"
       "\n"
       R"( {"output": "b", "input": ""}])",
       {"a.json record 1 (line 2)", "instruction: missing"},
       ""},
      {"wrongly typed field",
       "a.jsonl",
       kGood + "\n" + R"({"messages": [{"role": "user", "content": 5}]})",
       {"a.jsonl line 2", "messages[0].content", "got a number"},
       ""},
      {"empty conversation",
       "a.jsonl",
       kGood + "\n\n" + R"({"messages": []})",
       {"a.jsonl line 3", "messages: empty conversation"},
       ""},
      {"template field absent",
       "t.json",
       R"([{"Question": "q", "Response": "r"}, {"Question": "q"}])",
       {"t.json record 1", "Response", "no such field"},
       "template"},
      {"unknown part type",
       "a.jsonl",
       kGood + "\n" + R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]})",
       {"a.jsonl line 2", "messages[0].content[0].type", "unknown part type 'image_url'", "supported: text",
        "reasoning", "tool_call"},
       ""},
      {"tool_call part without arguments",
       "a.jsonl",
       kGood + "\n" +
           R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": )"
           R"([{"type": "tool_call", "value": {"name": "f"}}]}]})",
       {"a.jsonl line 2", "messages[1].content[0].value.arguments", "missing"},
       ""},
      {"reasoning part in a user turn",
       "a.jsonl",
       kGood + "\n" + R"({"messages": [{"role": "user", "content": [{"type": "reasoning", "value": "hm"}]}]})",
       {"a.jsonl line 2", "messages[0].content[0].type", "only assistant turns have reasoning parts"},
       ""},
      {"assistant with neither content nor tool_calls",
       "a.jsonl",
       kGood + "\n" + R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": null}]})",
       {"a.jsonl line 2", "messages[1]", "neither content nor tool_calls"},
       ""},
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
    EXPECT_NE(d.stats.bad_examples[0].find(c.expected[0]), std::string::npos)
        << c.name << ": " << d.stats.bad_examples[0];
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

// A comma between the records of a value stream once stopped the scanner (skip: an endless loop; error: "Empty").
TEST_F(BadRecords, CommaBetweenRecordsOfAValueStreamIsAnError) {
  for (const std::string on_bad : {"skip", "error"}) {
    const BadCase c{"comma", "v.json", kGood + ",\n" + kGood + "\n", {}, ""};
    const std::string e = test::input_error_of([&] { prepare_data(config(c, on_bad), kQwen.string(), false); });
    EXPECT_NE(e.find("v.json line 1: ',' where record 1 should start"), std::string::npos) << on_bad << ": " << e;
  }
  const BadCase c{"double comma", "a.json", "[" + kGood + ",,\n" + kGood + "]", {}, ""};
  const std::string e = test::input_error_of([&] { prepare_data(config(c, "skip"), kQwen.string(), false); });
  EXPECT_NE(e.find("a.json line 1: ',' where record 1 should start"), std::string::npos) << e;
}

// A UTF-8 byte order mark once made the first record bad (skipped in skip mode).
TEST_F(BadRecords, Utf8ByteOrderMarkIsSkipped) {
  const std::string bom = "\xEF\xBB\xBF";
  for (const BadCase& c : {BadCase{"jsonl", "b.jsonl", bom + kGood + "\n" + kGood + "\n", {}, ""},
                           BadCase{"array", "b.json", bom + "[" + kGood + ", " + kGood + "]", {}, ""},
                           BadCase{"values", "c.json", bom + kGood + "\n" + kGood, {}, ""}}) {
    PreparedData d = prepare_data(config(c, "skip"), kQwen.string(), false);
    EXPECT_EQ(d.stats.bad_records, 0) << c.name;
    EXPECT_EQ(d.stats.records, 2) << c.name;
  }
}

std::string widen(std::string_view ascii, int width, bool big_endian) {
  std::string out;
  for (char ch : ascii) {
    std::string unit(size_t(width), '\0');
    unit[big_endian ? size_t(width - 1) : 0] = ch;
    out += unit;
  }
  return out;
}

TEST_F(BadRecords, Utf16And32AreRefusedNamingTheEncoding) {
  struct Encoding {
    const char* name;
    std::string bom;
    int width;
    bool big_endian;
  };
  const Encoding encodings[] = {{"UTF-16 (little-endian)", "\xFF\xFE", 2, false},
                                {"UTF-16 (big-endian)", "\xFE\xFF", 2, true},
                                {"UTF-32 (little-endian)", std::string("\xFF\xFE\0\0", 4), 4, false},
                                {"UTF-32 (big-endian)", std::string("\0\0\xFE\xFF", 4), 4, true}};
  for (const Encoding& enc : encodings)
    for (const std::string& bom : {enc.bom, std::string()}) {
      const BadCase c{"wide", "w.jsonl", bom + widen(kGood + "\n", enc.width, enc.big_endian), {}, ""};
      const std::string e = test::input_error_of([&] { prepare_data(config(c, "skip"), kQwen.string(), false); });
      EXPECT_NE(e.find("w.jsonl: the file is " + std::string(enc.name) + " text; save it as UTF-8"), std::string::npos)
          << enc.name << (bom.empty() ? " without" : " with") << " BOM: " << e;
    }
}

TEST_F(BadRecords, NothingToTrainOnIsAnError) {
  const std::string bad = R"({"messages": []})";
  const BadCase empty{"empty", "e.jsonl", "", {}, ""};
  std::string e = test::input_error_of([&] { prepare_data(config(empty, "skip"), kQwen.string(), false); });
  EXPECT_NE(e.find("e.jsonl): nothing to train on: the files hold no records"), std::string::npos) << e;
  const BadCase all_bad{"all bad", "b.jsonl", bad + "\n" + bad + "\n", {}, ""};
  e = test::input_error_of([&] { prepare_data(config(all_bad, "skip"), kQwen.string(), false); });
  EXPECT_NE(e.find("nothing to train on: 2 records read: 2 bad (skipped)"), std::string::npos) << e;
  EXPECT_NE(e.find("first bad record: " + (dir_ / "b.jsonl").string() + " line 1: messages: empty conversation"),
            std::string::npos)
      << e;
}

TEST(DataProgress, IsNotTheTrainersProgress) { static_assert(!std::is_same_v<DataProgress, Progress>); }

TEST(DataConfigParse, KeysValuesAndPaths) {
  DataConfig c = parse_data_config(R"({"train_files": ["a.jsonl", "/abs/b.json"], "max_length": 2048,
      "truncation": "split", "eval_split": 0.05, "packing": false})",
                                   "cfg.json", "/base");
  EXPECT_EQ(c.train_files, (std::vector<std::string>{"/base/a.jsonl", "/abs/b.json"}));
  EXPECT_EQ(c.max_length, 2048);
  EXPECT_EQ(c.truncation, "split");
  EXPECT_FALSE(c.packing);
  try {
    parse_data_config(R"({"train_files": "a", "max_lenght": 5})", "cfg.json", "/base");
    ADD_FAILURE();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "cfg.json: unknown key \"data.max_lenght\" (did you mean \"data.max_length\"?)");
  }
  EXPECT_THROW(parse_data_config(R"({"train_files": "a", "truncation": "middle"})", "c", "/"), InputError);
  EXPECT_THROW(parse_data_config(R"({"train_files": "a", "max_length": "long"})", "c", "/"), InputError);
  EXPECT_THROW(parse_data_config(R"({"max_length": 5})", "c", "/"), InputError);
  EXPECT_EQ(nearest_key("lora_rnak", {"lora_rank", "lora_alpha"}), "lora_rank");
  EXPECT_EQ(nearest_key("zzzzzz", {"lora_rank"}), "");
}

}  // namespace
}  // namespace qsft
