// Training a byte-level BPE vocabulary on a text, in the form Qwen2 tokenizers take: the 256 bytes first, then one
// token per merge. engine/io/tiny_tokenizer.h trains the built-in tiny tokenizer with it.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qsft {

struct ByteLevelBpe {
  // id -> token, spelled in GPT-2's byte-level characters; ids 0..255 are the single bytes in that table's order.
  std::vector<std::string> vocab;
  std::vector<std::pair<std::string, std::string>> merges;  // by rank; each joins two vocab tokens into one
};

// Learns merges on `text` (valid NFC UTF-8) until the vocab has `vocab_size` tokens or no pair occurs twice.
// Words are the pieces of the Qwen2 pre-tokenizer (tokenizer/pretokenizer.h), so merges never cross what the
// tokenizer keeps apart. Each step merges the most frequent adjacent pair; ties go to the smaller (left, right)
// token strings, so the result depends on nothing but the input.
ByteLevelBpe train_byte_level_bpe(std::string_view text, size_t vocab_size);

}  // namespace qsft
