// The tokenizer against the shared vectors (llama.cpp's and transformers' Qwen2 cases), the vocab.json +
// merges.txt fallback against tokenizer.json, round trips, added tokens, special ids and thread safety.
#include <simdjson.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "engine/base/error.h"
#include "test_util.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace qsft {
namespace {

namespace fs = std::filesystem;

using test::read_file;

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

// vectors/qwen2-llamacpp.inp/.out: cases separated by "\n__ggml_vocab_test__\n", one line of ids per case.
std::vector<Case> llamacpp_cases(const fs::path& vectors) {
  std::string inp = read_file(vectors / "qwen2-llamacpp.inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<Case> cases;
  for (size_t pos = 0;;) {
    size_t next = inp.find(sep, pos);
    cases.push_back({inp.substr(pos, next == std::string::npos ? std::string::npos : next - pos), {}});
    if (next == std::string::npos) break;
    pos = next + sep.size();
  }
  if (cases.back().text.empty()) cases.pop_back();  // the file ends with a separator
  std::istringstream out(read_file(vectors / "qwen2-llamacpp.out"));
  std::string line;
  for (Case& c : cases) {
    std::getline(out, line);
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) c.ids.push_back(id);
  }
  return cases;
}

std::vector<Case> transformers_cases(const fs::path& vectors) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.load((vectors / "qwen2-transformers-integration.json").string());
  std::vector<Case> cases;
  for (simdjson::dom::element c : doc["cases"].get_array()) {
    Case k{std::string(std::string_view(c["text"])), {}};
    for (simdjson::dom::element id : c["ids"].get_array()) k.ids.push_back(static_cast<int32_t>(int64_t(id)));
    cases.push_back(std::move(k));
  }
  return cases;
}

class TokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    QSFT_REQUIRE_PATH(qwen_dir);
    if (!tok) tok = std::make_unique<Tokenizer>(Tokenizer::load(qwen_dir.string()));
  }
  std::vector<Case> all_cases() {
    auto cases = llamacpp_cases(vectors);
    auto more = transformers_cases(vectors);
    cases.insert(cases.end(), more.begin(), more.end());
    return cases;
  }
  const fs::path vectors = test::shared_testdata() / "vectors";
  const fs::path qwen_dir = test::shared_testdata() / "qwen2.5";
  static inline std::unique_ptr<Tokenizer> tok;
};

TEST_F(TokenizerTest, LlamaCppVectors) {
  auto cases = llamacpp_cases(vectors);
  ASSERT_EQ(cases.size(), 46u);
  for (const Case& c : cases) EXPECT_EQ(tok->encode(c.text), c.ids) << "text: " << c.text;
}

TEST_F(TokenizerTest, TransformersVectors) {
  for (const Case& c : transformers_cases(vectors)) EXPECT_EQ(tok->encode(c.text), c.ids) << "text: " << c.text;
}

TEST_F(TokenizerTest, DecodeInvertsEncode) {
  for (const Case& c : all_cases()) EXPECT_EQ(tok->decode(tok->encode(c.text)), tok->normalize(c.text));
}

TEST_F(TokenizerTest, VocabMergesFallbackEqualsTokenizerJson) {
  // A model folder without tokenizer.json, once with the official merges.txt and once with a '#version' header.
  for (const std::string header : {"", "#version: 0.2\n"}) {
    const test::ScopedTempDir dir("vocab_merges_" + std::to_string(header.size()));
    fs::copy_file(qwen_dir / "vocab.json", dir / "vocab.json", fs::copy_options::overwrite_existing);
    fs::copy_file(qwen_dir / "tokenizer_config.json", dir / "tokenizer_config.json",
                  fs::copy_options::overwrite_existing);
    std::ofstream(dir / "merges.txt", std::ios::binary) << header << read_file(qwen_dir / "merges.txt");
    Tokenizer fallback = Tokenizer::load(dir.path().string());
    EXPECT_EQ(fallback.vocab_size(), tok->vocab_size());
    for (const Case& c : all_cases()) EXPECT_EQ(fallback.encode(c.text), c.ids) << "header '" << header << "'";
    std::string with_specials = "<|im_start|>user\nhi<|im_end|>\n<tool_call>";
    EXPECT_EQ(fallback.encode(with_specials), tok->encode(with_specials));
  }
}

TEST_F(TokenizerTest, UnsupportedFilesAreInputErrorsNamingTheField) {
  // The Qwen2 tokenizer.json with a Llama-3 style digit rule (\p{N}{1,3}), which this tokenizer does not implement.
  std::string json = read_file(qwen_dir / "tokenizer.json");
  const std::string digit_rule = R"(|\\p{N}|)";
  ASSERT_NE(json.find(digit_rule), std::string::npos);
  json.replace(json.find(digit_rule), digit_rule.size(), R"(|\\p{N}{1,3}|)");
  const test::ScopedTempDir dir("bad_tokenizer");
  std::ofstream(dir / "tokenizer.json", std::ios::binary) << json;
  try {
    Tokenizer::load(dir.path().string());
    ADD_FAILURE() << "an unsupported pre-tokenizer must be refused";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json: pre_tokenizer"), std::string::npos) << e.what();
  }
  fs::remove(dir / "tokenizer.json");
  EXPECT_THROW(Tokenizer::load(dir.path().string()), InputError);  // no tokenizer files at all
}

TEST_F(TokenizerTest, AddedTokensAreMatchedOnRawText) {
  const int32_t im_end = tok->token_id("<|im_end|>");
  const int32_t tool_call = tok->token_id("<tool_call>");
  ASSERT_GE(im_end, 0);
  ASSERT_GE(tool_call, 0);
  EXPECT_TRUE(tok->is_special(im_end));
  EXPECT_FALSE(tok->is_special(tool_call));
  auto ids = tok->encode("a<|im_end|>b<tool_call>c");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), im_end), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tool_call), 1);
  // The special token's own text never splits into ordinary tokens, and decoding with skip drops only specials.
  EXPECT_EQ(tok->decode(ids), "a<|im_end|>b<tool_call>c");
  EXPECT_EQ(tok->decode(ids, /*skip_special_tokens=*/true), "ab<tool_call>c");
}

TEST_F(TokenizerTest, SpecialIdsFromTheConfig) {
  EXPECT_EQ(tok->eos_id(), tok->token_id("<|im_end|>"));
  EXPECT_EQ(tok->pad_id(), tok->token_id("<|endoftext|>"));
  EXPECT_EQ(tok->bos_id(), -1);
  EXPECT_EQ(tok->encode("hi", /*add_special_tokens=*/true), tok->encode("hi"));  // Qwen2.5 adds nothing
}

TEST_F(TokenizerTest, DeepSeekPrependsBos) {
  fs::path dir = test::shared_testdata() / "deepseek-r1-distill-qwen";
  QSFT_REQUIRE_PATH(dir);
  Tokenizer ds = Tokenizer::load(dir.string());
  ASSERT_EQ(ds.bos_id(), ds.token_id("<｜begin▁of▁sentence｜>"));
  auto plain = ds.encode("<｜User｜>hi");
  auto with_bos = ds.encode("<｜User｜>hi", /*add_special_tokens=*/true);
  ASSERT_EQ(with_bos.size(), plain.size() + 1);
  EXPECT_EQ(with_bos[0], ds.bos_id());
  EXPECT_EQ(plain[0], ds.token_id("<｜User｜>"));
}

TEST_F(TokenizerTest, DecodeReplacesInvalidUtf8) {
  // "é" is the bytes C3 A9; the single-byte tokens decode back to it together, and alone each is an invalid
  // sequence that becomes one U+FFFD.
  std::vector<int32_t> bytes;
  for (unsigned char b : std::string("é")) {
    std::string shown;
    utf8::append(shown, byte_level::char_of_byte(b));
    bytes.push_back(tok->token_id(shown));
    ASSERT_GE(bytes.back(), 0);
  }
  EXPECT_EQ(tok->decode(bytes), "é");
  const std::string replacement = "\xEF\xBF\xBD";
  EXPECT_EQ(tok->decode(std::vector<int32_t>{bytes[0]}), replacement);
  EXPECT_EQ(tok->decode(std::vector<int32_t>{bytes[1], bytes[1]}), replacement + replacement);
  EXPECT_EQ(tok->decode(std::vector<int32_t>{bytes[0], tok->token_id("a")}), replacement + "a");
}

TEST_F(TokenizerTest, RejectsInvalidUtf8AndUnknownIds) {
  EXPECT_THROW(tok->encode("abc\xff"), InputError);
  std::vector<int32_t> bad = {tok->vocab_size()};
  EXPECT_THROW(tok->decode(bad), InputError);
}

TEST_F(TokenizerTest, EncodeIsThreadSafe) {
  auto cases = all_cases();
  std::vector<std::vector<int32_t>> want;
  for (const Case& c : cases) want.push_back(c.ids);
  std::vector<int> failures(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round)
        for (size_t i = 0; i < cases.size(); ++i) {
          size_t k = (i + static_cast<size_t>(t)) % cases.size();
          failures[t] += tok->encode(cases[k].text) != want[k];
        }
    });
  for (auto& th : threads) th.join();
  for (int f : failures) EXPECT_EQ(f, 0);
}

}  // namespace
}  // namespace qsft
