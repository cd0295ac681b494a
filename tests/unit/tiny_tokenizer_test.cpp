// The built-in tiny tokenizer (engine/io/tiny_tokenizer.h): deterministic, and tokenizer.json /
// tokenizer_config.json in the structure of Qwen2.5's. tests/interop/tiny_tokenizer_test.py loads the files that
// `qwen-sft init-model --preset tiny` writes with Hugging Face tokenizers.
#include "engine/io/tiny_tokenizer.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <initializer_list>
#include <map>
#include <set>

#include "test_util.h"
#include "tokenizer/bpe_trainer.h"

namespace qsft {
namespace {

namespace fs = std::filesystem;

using test::read_file;

// Expects ours[key] and ref[key] to be the same JSON (compared minified) for every key.
void expect_same_values(simdjson::dom::element ours, simdjson::dom::element ref,
                        std::initializer_list<const char*> keys) {
  for (const char* key : keys) EXPECT_EQ(simdjson::minify(ours[key]), simdjson::minify(ref[key])) << key;
}

class TinyTokenizerTest : public test::TempDirTest {
 protected:
  // Parses DIR/NAME (failing the test when it is not valid JSON); the parser must outlive the element.
  simdjson::dom::element parse(simdjson::dom::parser& parser, const fs::path& file) {
    simdjson::dom::element root;
    auto err = parser.load(file.string()).get(root);
    EXPECT_EQ(err, simdjson::SUCCESS) << file << ": " << simdjson::error_message(err);
    return root;
  }
};

constexpr int64_t kBpeTokens = 700;
const std::vector<std::pair<std::string, bool>> kAdded = {{"<|endoftext|>", true},
                                                          {"<|im_start|>", true},
                                                          {"<|im_end|>", true},
                                                          {"<tool_call>", false},
                                                          {"</tool_call>", false}};

TEST_F(TinyTokenizerTest, WritesTokenizerFiles) {
  TinyTokenizer t = write_tiny_tokenizer(dir_, 2048);
  EXPECT_EQ(t.vocab_size, kBpeTokens + 5);
  EXPECT_EQ(t.endoftext_id, kBpeTokens);
  EXPECT_EQ(t.im_start_id, kBpeTokens + 1);
  EXPECT_EQ(t.im_end_id, kBpeTokens + 2);
  EXPECT_TRUE(fs::exists(dir_ / "tokenizer.json"));
  EXPECT_TRUE(fs::exists(dir_ / "tokenizer_config.json"));
}

TEST_F(TinyTokenizerTest, SameBytesEveryTime) {
  fs::create_directories(dir_ / "a");
  fs::create_directories(dir_ / "b");
  write_tiny_tokenizer(dir_ / "a", 2048);
  write_tiny_tokenizer(dir_ / "b", 2048);
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    std::string a = read_file(dir_ / "a" / name);
    EXPECT_GT(a.size(), 1000u) << name;
    EXPECT_EQ(a, read_file(dir_ / "b" / name)) << name;
  }
}

TEST_F(TinyTokenizerTest, TokenizerJsonIsAByteLevelBpeWithConsistentMerges) {
  write_tiny_tokenizer(dir_, 2048);
  simdjson::dom::parser parser;
  simdjson::dom::element root = parse(parser, dir_ / "tokenizer.json");
  simdjson::dom::element model = root["model"];
  EXPECT_EQ(std::string_view(model["type"]), "BPE");

  std::map<std::string, int64_t> vocab;
  std::set<int64_t> ids;
  for (auto field : simdjson::dom::object(model["vocab"])) {
    vocab[std::string(field.key)] = int64_t(field.value);
    ids.insert(int64_t(field.value));
  }
  ASSERT_EQ(vocab.size(), size_t(kBpeTokens));
  EXPECT_EQ(*ids.begin(), 0);
  EXPECT_EQ(*ids.rbegin(), kBpeTokens - 1);  // ids 0..699, each once

  size_t n_merges = 0;
  for (simdjson::dom::element m : simdjson::dom::array(model["merges"])) {
    std::string merge{std::string_view(m)};
    size_t space = merge.find(' ');
    ASSERT_NE(space, std::string::npos) << merge;
    std::string left = merge.substr(0, space), right = merge.substr(space + 1);
    ASSERT_TRUE(vocab.count(left) && vocab.count(right) && vocab.count(left + right)) << merge;
    EXPECT_GT(vocab[left + right], std::max(vocab[left], vocab[right])) << merge;
    EXPECT_GE(vocab[left + right], 256) << merge;
    ++n_merges;
  }
  EXPECT_GE(n_merges, size_t(kBpeTokens - 256));

  size_t k = 0;
  for (simdjson::dom::element a : simdjson::dom::array(root["added_tokens"])) {
    ASSERT_LT(k, kAdded.size());
    EXPECT_EQ(int64_t(a["id"]), kBpeTokens + int64_t(k));
    EXPECT_EQ(std::string_view(a["content"]), kAdded[k].first);
    EXPECT_EQ(bool(a["special"]), kAdded[k].second) << kAdded[k].first;
    EXPECT_FALSE(bool(a["normalized"]));
    ++k;
  }
  EXPECT_EQ(k, kAdded.size());
}

TEST_F(TinyTokenizerTest, PipelineAndByteAlphabetAreQwen25s) {
  fs::path qwen = test::shared_testdata() / "qwen2.5" / "tokenizer.json";
  QSFT_REQUIRE_PATH(qwen);
  write_tiny_tokenizer(dir_, 2048);
  simdjson::dom::parser ours_parser, qwen_parser;
  simdjson::dom::element ours = parse(ours_parser, dir_ / "tokenizer.json"), ref = parse(qwen_parser, qwen);
  expect_same_values(ours, ref, {"version", "normalizer", "pre_tokenizer", "post_processor", "decoder"});
  expect_same_values(
      ours["model"], ref["model"],
      {"type", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", "byte_fallback"});

  // Ids 0..255: the same 256 byte-level characters in the same order.
  std::vector<std::string> ours_bytes(256), ref_bytes(256);
  for (auto [vocab, out] : {std::pair{ours["model"]["vocab"], &ours_bytes}, {ref["model"]["vocab"], &ref_bytes}})
    for (auto field : simdjson::dom::object(vocab))
      if (int64_t id = int64_t(field.value); id < 256) (*out)[size_t(id)] = std::string(field.key);
  EXPECT_EQ(ours_bytes, ref_bytes);
}

TEST_F(TinyTokenizerTest, ConfigIsQwen25InstructsWithTheSameChatTemplate) {
  fs::path qwen = test::shared_testdata() / "qwen2.5" / "tokenizer_config.json";
  QSFT_REQUIRE_PATH(qwen);
  write_tiny_tokenizer(dir_, 4096);
  simdjson::dom::parser ours_parser, qwen_parser;
  simdjson::dom::element ours = parse(ours_parser, dir_ / "tokenizer_config.json"), ref = parse(qwen_parser, qwen);
  EXPECT_EQ(std::string_view(ours["chat_template"]), std::string_view(ref["chat_template"]));
  expect_same_values(ours, ref,
                     {"add_bos_token", "add_prefix_space", "bos_token", "clean_up_tokenization_spaces", "eos_token",
                      "errors", "pad_token", "split_special_tokens", "tokenizer_class", "unk_token"});
  EXPECT_EQ(int64_t(ours["model_max_length"]), 4096);
  for (size_t k = 0; k < kAdded.size(); ++k) {
    simdjson::dom::element entry = ours["added_tokens_decoder"][std::to_string(kBpeTokens + int64_t(k))];
    EXPECT_EQ(std::string_view(entry["content"]), kAdded[k].first);
    EXPECT_EQ(bool(entry["special"]), kAdded[k].second);
  }
}

TEST(ByteLevelBpeTrainer, MergesTheMostFrequentPairAndBreaksTiesByTokenStrings) {
  // Words "xy", " xy", " ab", " ab": (a,b), (x,y) and (Ġ,a) occur twice each; "a" < "x" < "Ġ" picks (a,b) first,
  // then (x,y), then (Ġ,ab); every remaining pair occurs once, so training stops below the asked size.
  ByteLevelBpe bpe = train_byte_level_bpe("xy xy ab ab", 1000);
  std::vector<std::pair<std::string, std::string>> expected = {{"a", "b"}, {"x", "y"}, {"Ġ", "ab"}};
  EXPECT_EQ(bpe.merges, expected);
  ASSERT_EQ(bpe.vocab.size(), 259u);
  EXPECT_EQ(bpe.vocab[256], "ab");
  EXPECT_EQ(bpe.vocab[258], "Ġab");
  EXPECT_EQ(bpe.vocab[0], "!");    // byte 0x21, the first printable byte
  EXPECT_EQ(bpe.vocab[255], "Ń");  // byte 0xAD (soft hyphen), the last one moved to U+0100 + 67

  EXPECT_EQ(train_byte_level_bpe("xy xy ab ab", 257).merges.size(), 1u);  // stops at the asked size
}

}  // namespace
}  // namespace qsft
