// The Qwen2 pre-tokenizer: invariants every split must keep, and the cases the pattern's alternatives define
// (each expectation below is read off the pattern in tokenizer/pretokenizer.h, not taken from a tool's output).
#include <random>

#include "test_util.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode_props.h"
#include "tokenizer/utf8.h"

namespace qsft {
namespace {

std::vector<std::string> split(std::string_view text) {
  std::vector<ByteSpan> spans;
  pretokenize_qwen2(text, spans);
  std::vector<std::string> out;
  for (ByteSpan s : spans) out.emplace_back(text.substr(s.begin, s.end - s.begin));
  return out;
}

std::vector<char32_t> code_points(std::string_view s) {
  std::vector<char32_t> out;
  for (size_t i = 0, len; i < s.size(); i += len) out.push_back(utf8::decode(s, i, &len));
  return out;
}

TEST(Pretokenizer, PatternAlternatives) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split("it's we'LL 'Re"), (V{"it", "'s", " we", "'LL", " '", "Re"}));  // contractions, any case
  EXPECT_EQ(split("12345"), (V{"1", "2", "3", "4", "5"}));                        // one digit per piece
  EXPECT_EQ(split("a   b"), (V{"a", "  ", " b"}));                                // \s+(?!\S) leaves one space
  EXPECT_EQ(split("a \n\n b"), (V{"a", " \n\n", " b"}));                          // \s*[\r\n]+
  EXPECT_EQ(split("x  "), (V{"x", "  "}));                                        // trailing spaces stay together
  EXPECT_EQ(split("\tword !!\n\n?"), (V{"\tword", " !!\n\n", "?"}));              // optional non-letter before letters
  EXPECT_EQ(split("\r\n\r\nA"), (V{"\r\n\r\n", "A"}));
}

TEST(Pretokenizer, InvariantsOnRandomText) {
  const std::vector<std::string> atoms = {" ", "  ",     "\t",     "\n",     "\r\n",   "a",  "Zz",
                                          "é", "中文",   "7",      "٣",      "!",      "'s", "'",
                                          "😀", "\u200d", "\u0301", "\u00a0", "\u3000", "-",  "ſ"};
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    for (int k = std::uniform_int_distribution<int>(1, 16)(rng); k > 0; --k)
      text += atoms[std::uniform_int_distribution<size_t>(0, atoms.size() - 1)(rng)];
    std::string joined;
    for (const std::string& piece : split(text)) {
      ASSERT_FALSE(piece.empty());
      joined += piece;
      auto cps = code_points(piece);
      int numbers = 0, letters = 0;
      for (char32_t c : cps) {
        numbers += unicode::char_class(c) == unicode::CharClass::kNumber;
        letters += unicode::char_class(c) == unicode::CharClass::kLetter;
      }
      if (numbers) {
        EXPECT_EQ(cps.size(), 1u) << "a number is always a piece of its own: " << text;
      }
      EXPECT_TRUE(letters == 0 || numbers == 0) << text;
    }
    EXPECT_EQ(joined, text) << "the pieces must cover the text exactly";
  }
}

}  // namespace
}  // namespace qsft
