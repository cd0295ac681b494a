// The pipeline on every file of ../shared/testdata/sft: formats recognised, every record kept, hand-checked
// renderings, ShareGPT == OpenAI for the same conversations, gzip input, determinism across thread counts, and
// the cache.
#include <zlib.h>

#include <fstream>

#include "data/batching.h"
#include "data/dataset.h"
#include "engine/base/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace qsft {
namespace {

namespace fs = std::filesystem;

const fs::path kQwen = test::shared_testdata() / "qwen2.5";
const fs::path kSft = test::shared_testdata() / "sft";

class SharedFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const fs::path& p : {kQwen, kSft})
      if (!fs::exists(p)) GTEST_SKIP() << "skipped: " << p << " is absent (shared test data)";
    cache_ = test::fresh_temp_dir("data_shared");
  }
  void TearDown() override { fs::remove_all(cache_); }

  DataConfig config(const std::string& file) const {
    DataConfig cfg;
    cfg.train_files = {(kSft / file).string()};
    cfg.max_length = 8192;
    cfg.cache_dir = cache_.string();
    return cfg;
  }
  static std::string text(const Tokenizer& tok, std::span<const int32_t> ids) { return tok.decode(ids); }
  // The decoded trained tokens of sequence i.
  static std::string trained_text(const Tokenizer& tok, const SequenceSet& s, size_t i) {
    std::vector<int32_t> ids;
    for (size_t t = 0; t < s.ids(i).size(); ++t)
      if (s.mask(i)[t]) ids.push_back(s.ids(i)[t]);
    return tok.decode(ids);
  }

  fs::path cache_;
};

TEST_F(SharedFiles, AlpacaEnglishAndChinese) {
  Tokenizer tok = Tokenizer::load(kQwen.string());
  for (auto [file, records] : {std::pair{"alpaca_en_demo.json", 999}, std::pair{"alpaca_zh_demo.json", 1000}}) {
    PreparedData d = prepare_data(config(file), kQwen.string(), false);
    EXPECT_EQ(d.stats.records, records);
    EXPECT_EQ(d.train.size(), size_t(records));
    EXPECT_EQ(d.stats.files.at(0).format, "alpaca");
  }
  PreparedData d = prepare_data(config("alpaca_en_demo.json"), kQwen.string(), false);
  const std::string first = text(tok, d.train.ids(0));
  EXPECT_EQ(first.rfind("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
                        "<|im_end|>\n<|im_start|>user\nDescribe a process of making crepes.<|im_end|>\n"
                        "<|im_start|>assistant\nMaking crepes is an easy and delicious process!",
                        0),
            0u);
  const std::string trained = trained_text(tok, d.train, 0);
  EXPECT_EQ(trained.rfind("\nMaking crepes is an easy", 0), 0u);
  EXPECT_TRUE(trained.ends_with("<|im_end|>\n"));
  EXPECT_EQ(first.substr(first.size() - trained.size()), trained);  // the answer is the trained tail
}

TEST_F(SharedFiles, ShareGPTAndOpenAIVersionsGiveTheSameTokens) {
  PreparedData s = prepare_data(config("glaive_toolcall_en_sharegpt.json"), kQwen.string(), false);
  PreparedData o = prepare_data(config("glaive_toolcall_en_openai.jsonl"), kQwen.string(), false);
  EXPECT_EQ(s.stats.files.at(0).format, "sharegpt");
  EXPECT_EQ(o.stats.files.at(0).format, "messages");
  ASSERT_EQ(s.train.size(), 300u);
  ASSERT_EQ(o.train.size(), 300u);
  for (size_t i = 0; i < 300; ++i) {
    ASSERT_TRUE(std::ranges::equal(s.train.ids(i), o.train.ids(i))) << "record " << i;
    ASSERT_TRUE(std::ranges::equal(s.train.mask(i), o.train.mask(i))) << "record " << i;
  }
}

TEST_F(SharedFiles, OpenAIToolsSingleTrainsToolCalls) {
  Tokenizer tok = Tokenizer::load(kQwen.string());
  PreparedData d = prepare_data(config("openai_tools_single.json"), kQwen.string(), false);
  ASSERT_EQ(d.train.size(), 1u);
  const std::string trained = trained_text(tok, d.train, 0);
  EXPECT_NE(
      trained.find("<tool_call>\n{\"name\": \"get_car_price\", \"arguments\": {\"car_name\": \"Song\"}}\n</tool_call>"),
      std::string::npos);
  EXPECT_EQ(trained.find("<tool_response>"), std::string::npos);  // tool results are not trained
  EXPECT_EQ(trained.find("who is the CEO"), std::string::npos);
}

TEST_F(SharedFiles, MedicalTemplateAsInTheDeepSeekTutorial) {
  Tokenizer tok = Tokenizer::load(kQwen.string());
  DataConfig cfg = config("medical_o1_reasoning_demo.json");
  cfg.prompt_template = "诊断问题：{Question}\n详细分析：\n{Complex_CoT}\n### 答案：\n";
  cfg.completion_template = "{Response}";
  PreparedData d = prepare_data(cfg, kQwen.string(), false);
  ASSERT_EQ(d.train.size(), 198u);
  const std::string all = text(tok, d.train.ids(0));
  EXPECT_EQ(all.rfind("诊断问题：A 45-year-old homeless man presents", 0), 0u);
  EXPECT_TRUE(trained_text(tok, d.train, 0).starts_with("The laboratory findings, especially the severe anemia"));
  EXPECT_TRUE(all.ends_with("<|im_end|>"));  // the Qwen2.5-Instruct eos
}

// `copies` copies of a shared file end to end, as it is and gzip-compressed.
void write_copies(const fs::path& src, int copies, const fs::path& plain, const fs::path& gz) {
  const std::string data = test::read_file(src);
  std::ofstream out(plain, std::ios::binary);
  gzFile z = gzopen(gz.c_str(), "wb");
  ASSERT_NE(z, nullptr);
  for (int i = 0; i < copies; ++i) {
    out << data;
    ASSERT_EQ(gzwrite(z, data.data(), unsigned(data.size())), int(data.size()));
  }
  ASSERT_EQ(gzclose(z), Z_OK);
}

TEST_F(SharedFiles, GzipFilesGiveTheSameSequences) {
  // JSONL three times over (2 MB: records cross the reader's 1 MB chunks) and a JSON array.
  for (auto [file, copies, records] :
       {std::tuple{"glaive_toolcall_en_openai.jsonl", 3, 900}, std::tuple{"alpaca_zh_demo.json", 1, 1000}}) {
    const fs::path plain = cache_ / file, gz = cache_ / (std::string(file) + ".gz");
    write_copies(kSft / file, copies, plain, gz);
    DataConfig cfg = config(file);
    cfg.train_files = {plain.string()};
    PreparedData p = prepare_data(cfg, kQwen.string(), false);
    cfg.train_files = {gz.string()};
    PreparedData z = prepare_data(cfg, kQwen.string(), false);
    EXPECT_FALSE(z.stats.from_cache);
    ASSERT_EQ(z.train.size(), size_t(records)) << file;
    EXPECT_EQ(z.stats.files.at(0).format, p.stats.files.at(0).format);
    EXPECT_TRUE(std::ranges::equal(p.train.flat_ids(), z.train.flat_ids())) << file;
    EXPECT_TRUE(std::ranges::equal(p.train.flat_mask(), z.train.flat_mask())) << file;
    EXPECT_TRUE(std::ranges::equal(p.train.offsets(), z.train.offsets())) << file;
  }
  // A gzip file cut short is an error naming the file, not a silently shorter dataset.
  const fs::path gz = cache_ / "glaive_toolcall_en_openai.jsonl.gz";
  fs::resize_file(gz, fs::file_size(gz) / 2);
  DataConfig cfg = config("glaive_toolcall_en_openai.jsonl");
  cfg.train_files = {gz.string()};
  try {
    prepare_data(cfg, kQwen.string(), false);
    ADD_FAILURE() << "no error for a truncated gzip file";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(gz.string()), std::string::npos) << e.what();
  }
}

TEST_F(SharedFiles, DeterministicAcrossThreadCountsAndFromTheCache) {
  DataConfig cfg = config("alpaca_zh_demo.json");
  cfg.eval_split = 0.1;
  cfg.max_length = 256;
  cfg.num_threads = 1;
  PreparedData one = prepare_data(cfg, kQwen.string(), false);
  EXPECT_FALSE(one.stats.from_cache);
  fs::remove_all(cache_);
  cfg.num_threads = 2;
  PreparedData two = prepare_data(cfg, kQwen.string(), false);
  PreparedData cached = prepare_data(cfg, kQwen.string(), false);
  EXPECT_TRUE(cached.stats.from_cache);
  EXPECT_EQ(one.eval.size(), 100u);
  for (const PreparedData* d : {&two, &cached}) {
    EXPECT_TRUE(std::ranges::equal(one.train.flat_ids(), d->train.flat_ids()));
    EXPECT_TRUE(std::ranges::equal(one.train.flat_mask(), d->train.flat_mask()));
    EXPECT_TRUE(std::ranges::equal(one.train.offsets(), d->train.offsets()));
    EXPECT_TRUE(std::ranges::equal(one.eval.flat_ids(), d->eval.flat_ids()));
    EXPECT_EQ(one.stats.truncated, d->stats.truncated);
  }
  EXPECT_EQ(plan_epoch(one.train, 256, 2, 0, 1, 0), plan_epoch(cached.train, 256, 2, 0, 1, 0));
  EXPECT_GT(one.stats.packing_efficiency, 0.9);
}

TEST_F(SharedFiles, CorruptOrChangedCacheIsRebuilt) {
  DataConfig cfg = config("openai_tools_single.json");
  PreparedData first = prepare_data(cfg, kQwen.string(), false);
  const fs::path file = first.stats.cache_path;
  ASSERT_TRUE(fs::exists(file));
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('\x7f');
  }
  PreparedData rebuilt = prepare_data(cfg, kQwen.string(), false);
  EXPECT_FALSE(rebuilt.stats.from_cache);
  EXPECT_TRUE(std::ranges::equal(first.train.flat_ids(), rebuilt.train.flat_ids()));
  EXPECT_TRUE(prepare_data(cfg, kQwen.string(), false).stats.from_cache);
  cfg.max_length = 4096;  // another option: another cache
  PreparedData other = prepare_data(cfg, kQwen.string(), false);
  EXPECT_FALSE(other.stats.from_cache);
  EXPECT_NE(other.stats.cache_path, first.stats.cache_path);
}

}  // namespace
}  // namespace qsft
