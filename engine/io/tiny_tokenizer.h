// A small Qwen2-style tokenizer written without any download, for `qwen-sft init-model --preset tiny`:
// byte-level BPE trained on a short built-in English + code + Chinese text, in exactly the structure of the
// Qwen2.5 tokenizer.json (NFC, the Qwen2 split regex, ByteLevel), with the ChatML special tokens and the
// Qwen2.5-Instruct tokenizer_config.json (chat template included), so every tool that loads a Qwen2.5 tokenizer
// loads this one.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
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

struct TinyTokenizer {
  int64_t vocab_size = 0;  // BPE tokens + added tokens: the model's vocab must be at least this
  int64_t endoftext_id = 0;  // <|endoftext|>: pad (and the base model's eos)
  int64_t im_start_id = 0;
  int64_t im_end_id = 0;  // <|im_end|>: the instruct eos
};

// Writes DIR/tokenizer.json and DIR/tokenizer_config.json (atomically; DIR must exist). 700 BPE tokens, then
// <|endoftext|>, <|im_start|>, <|im_end|> (special) and <tool_call>, </tool_call> (not special).
// The same bytes every time.
TinyTokenizer write_tiny_tokenizer(const std::filesystem::path& dir, int64_t model_max_length);

}  // namespace qsft
