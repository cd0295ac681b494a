// A small Qwen2-style tokenizer written without any download, for `qwen-sft init-model --preset tiny`:
// byte-level BPE (tokenizer/bpe_trainer.h) trained on a short built-in English + code + Chinese text, in exactly
// the structure of the Qwen2.5 tokenizer.json (NFC, the Qwen2 split regex, ByteLevel), with the ChatML special
// tokens and the Qwen2.5-Instruct tokenizer_config.json (chat template included), so every tool that loads a
// Qwen2.5 tokenizer loads this one. (The files are written here, with engine/base/json_writer.h; the trainer is the
// tokenizer library's.)
#pragma once
#include <cstdint>
#include <filesystem>

namespace qsft {

struct TinyTokenizer {
  int64_t vocab_size = 0;    // BPE tokens + added tokens: the model's vocab must be at least this
  int64_t endoftext_id = 0;  // <|endoftext|>: pad (and the base model's eos)
  int64_t im_start_id = 0;
  int64_t im_end_id = 0;  // <|im_end|>: the instruct eos
};

// Writes DIR/tokenizer.json and DIR/tokenizer_config.json (atomically; DIR must exist). 700 BPE tokens, then
// <|endoftext|>, <|im_start|>, <|im_end|> (special) and <tool_call>, </tool_call> (not special).
// The same bytes every time.
TinyTokenizer write_tiny_tokenizer(const std::filesystem::path& dir, int64_t model_max_length);

}  // namespace qsft
