// Fuzzes tokenizer.json: the input is the file, optionally followed by a NUL and the text to encode (else a short
// mixed text). A tokenizer that loads must encode the text to ids inside its vocabulary with byte spans inside
// the normalised text, and decode what it encoded (and any id, or refuse it with an InputError).
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

namespace {

using namespace qsft;

constexpr std::string_view kDefaultText = "Hello, world! 你好 <|im_start|>user\n  x = 1;\n\n<|endoftext|> ok's 123";

void use(const Tokenizer& tok, std::string_view text) {
  std::vector<int32_t> ids;
  std::vector<ByteSpan> spans;
  std::string normalized;
  bool valid_text = true;
  try {
    tok.encode_into(text, ids, &spans);
    normalized = tok.normalize(text);  // (its callers pass valid UTF-8 only: encode_into checks it)
  } catch (const InputError&) {
    valid_text = false;  // text that is not UTF-8: rejected, as documented
  }
  if (valid_text) {
    fuzz::require(spans.size() == ids.size(), "one span per id");
    for (size_t i = 0; i < ids.size(); ++i) {
      fuzz::require(ids[i] >= 0 && ids[i] < tok.vocab_size(), "ids inside the vocabulary");
      fuzz::require(spans[i].begin <= spans[i].end && spans[i].end <= normalized.size(), "spans inside the text");
    }
    tok.decode(ids);
    tok.decode(ids, true);
    tok.encode(text, true);
  }
  std::vector<int32_t> first(size_t(std::min(tok.vocab_size(), 2048)));
  std::iota(first.begin(), first.end(), 0);
  try {
    tok.decode(first);
  } catch (const InputError&) {  // an id the file leaves out (ids need not be contiguous)
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto [file, text] = fuzz::split_at_nul(std::string_view(reinterpret_cast<const char*>(data), size));
  const bool has_text = file.size() < size;
  fuzz::write_file("model/tokenizer.json", file);
  std::optional<Tokenizer> tok;
  fuzz::expect_input_errors({"tokenizer.json"},
                            [&] { tok.emplace(Tokenizer::load((fuzz::scratch_dir() / "model").string())); });
  if (tok) use(*tok, has_text ? text : kDefaultText);
  return 0;
}
