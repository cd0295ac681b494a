// Hostile tokenizer files: token ids out of range (which once overflowed `id + 1` or were narrowed to 32 bits),
// negative, duplicated or beyond the model's vocab_size are InputErrors naming the file and the token; a
// tokenizer.json without added_tokens (or with null) loads with none. The files are the built-in tiny tokenizer's,
// edited.
#include <gtest/gtest.h>

#include <fstream>

#include "engine/io/tiny_tokenizer.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace qsft {
namespace {

namespace fs = std::filesystem;

class TokenizerFilesTest : public test::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    tiny_ = write_tiny_tokenizer(dir_, 2048);
    json_ = test::read_file(dir_ / "tokenizer.json");
  }
  // tokenizer.json with `from` (which must occur) replaced by `to`.
  void write_edited(const std::string& from, const std::string& to) {
    std::string json = json_;
    const size_t at = json.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    json.replace(at, from.size(), to);
    std::ofstream(dir_ / "tokenizer.json", std::ios::binary) << json;
  }
  std::string load_error() {
    return test::input_error_of([&] { Tokenizer::load(dir_.string()); });
  }
  // The tiny tokenizer's first vocabulary entry (the byte '!') and first added token, as written.
  const std::string first_vocab_ = "\"!\": 0,";
  std::string first_added_id() { return "\"id\": " + std::to_string(tiny_.endoftext_id) + ","; }

  TinyTokenizer tiny_;
  std::string json_;
};

TEST_F(TokenizerFilesTest, VocabularyIdsOutOfRangeAreRefused) {
  // 2^31 - 1 overflowed id + 1; 2^32 + 5 was narrowed to 5; 1.5e9 asked for a 48 GB table.
  for (const std::string id : {"2147483647", "4294967301", "1500000000", "-1"}) {
    write_edited(first_vocab_, "\"!\": " + id + ",");
    const std::string e = load_error();
    EXPECT_NE(e.find("tokenizer.json: model.vocab: token '!' has id " + id + ", outside 0.."), std::string::npos) << e;
  }
}

TEST_F(TokenizerFilesTest, AddedTokenIdsOutOfRangeAreRefused) {
  for (const std::string id : {"2147483647", "4294967296", "-3"}) {
    write_edited(first_added_id(), "\"id\": " + id + ",");
    const std::string e = load_error();
    EXPECT_NE(e.find("tokenizer.json: added_tokens[0].id: token '<|endoftext|>' has id " + id), std::string::npos) << e;
  }
}

TEST_F(TokenizerFilesTest, DuplicateIdsAreRefused) {
  write_edited(first_vocab_, "\"!\": 1,");
  std::string e = load_error();
  EXPECT_NE(e.find("tokenizer.json: model.vocab: tokens"), std::string::npos) << e;
  EXPECT_NE(e.find("both have id 1"), std::string::npos) << e;
  write_edited(first_added_id(), "\"id\": " + std::to_string(tiny_.im_end_id) + ",");
  e = load_error();
  EXPECT_NE(e.find("added_tokens[2].id: tokens '<|endoftext|>' and '<|im_end|>' both have id"), std::string::npos) << e;
}

TEST_F(TokenizerFilesTest, IdsBeyondTheModelsVocabularyAreRefused) {
  std::ofstream(dir_ / "config.json") << "{\"vocab_size\": " << tiny_.im_end_id << "}";
  std::string e = load_error();
  EXPECT_NE(e.find("token '<|im_end|>' has id " + std::to_string(tiny_.im_end_id)), std::string::npos) << e;
  EXPECT_NE(e.find("vocab_size in " + (dir_ / "config.json").string()), std::string::npos) << e;
  std::ofstream(dir_ / "config.json") << "{\"vocab_size\": " << tiny_.vocab_size << "}";
  EXPECT_EQ(Tokenizer::load(dir_.string()).vocab_size(), tiny_.vocab_size);
}

TEST_F(TokenizerFilesTest, AddedTokensAbsentOrNullMeanNone) {
  fs::remove(dir_ / "tokenizer_config.json");  // it names <|im_end|> as eos, which would be no token now
  const size_t begin = json_.find("\"added_tokens\": [");
  const size_t end = json_.find("],", begin) + 2;
  ASSERT_NE(begin, std::string::npos);
  for (const std::string replacement : {"", "\"added_tokens\": null,"}) {
    write_edited(json_.substr(begin, end - begin), replacement);
    Tokenizer tok = Tokenizer::load(dir_.string());
    EXPECT_EQ(tok.token_id("<|im_end|>"), -1);
    EXPECT_EQ(tok.vocab_size(), tiny_.endoftext_id);
  }
}

}  // namespace
}  // namespace qsft
