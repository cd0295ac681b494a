// The Qwen2 pre-tokenizer, written by hand over Unicode character classes. It splits text exactly as the
// Hugging Face Split pre-tokenizer (behaviour Isolated) does with the Qwen2 pattern
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// The alternatives are tried in order at each position; the first that matches gives the next piece.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace qsft {

// The pattern as Qwen2's tokenizer.json writes it (its pre_tokenizer's Split regex).
inline constexpr std::string_view kQwen2SplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct ByteSpan {
  uint32_t begin, end;  // byte offsets, end exclusive
};

// Appends the pieces of text (valid UTF-8) to pieces, in order; together they cover text exactly.
void pretokenize_qwen2(std::string_view text, std::vector<ByteSpan>& pieces);

}  // namespace qsft
