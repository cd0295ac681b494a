// Reading a model folder's tokenizer files into the parts a Tokenizer is built from: tokenizer.json (Hugging Face
// tokenizers format) or, failing that, vocab.json + merges.txt; tokenizer_config.json for the special tokens'
// names and the chat template. Anything this implementation cannot reproduce exactly is an InputError.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"

namespace qsft {

struct TokenizerParts {
  std::string source;                              // the file the parts come from, for error messages
  std::unordered_map<std::string, int32_t> vocab;  // raw bytes -> id
  std::vector<BpeModel::Merge> merges;             // raw bytes, by rank
  bool ignore_merges = false;
  std::vector<AddedToken> added;
  bool nfc = true;                  // the normalizer: NFC or none
  std::vector<int32_t> prefix_ids;  // the post-processor for one sequence: ids before and after it
  std::vector<int32_t> suffix_ids;
};

// The ids tokens may have: [0, limit). Every reader below refuses an id outside it, and two tokens of the
// vocabulary (or two added tokens) with one id, naming the file and the token.
struct TokenIdLimit {
  int64_t limit = kMaxTokenIds;
  std::string why = "the largest supported id";  // said in the error, e.g. "the model's vocab_size (config.json)"
};

// The model's vocab_size from the folder's config.json; the default limit when the file or the key is absent.
TokenIdLimit read_model_id_limit(const std::string& config_path);

// tokenizer.json.
TokenizerParts read_tokenizer_json(const std::string& path, const TokenIdLimit& ids = {});

// vocab.json + merges.txt (with or without a '#version' header line), with the Qwen2 normaliser and
// pre-tokenizer; added tokens from the config's added_tokens_decoder.
TokenizerParts read_vocab_merges(const std::string& vocab_path, const std::string& merges_path,
                                 const std::vector<AddedToken>& added, const TokenIdLimit& ids = {});

struct TokenizerConfig {
  std::optional<std::string> bos_token, eos_token, pad_token;
  std::vector<AddedToken> added_tokens_decoder;
  std::optional<std::string> chat_template;  // the default one
};

// tokenizer_config.json; an absent file gives an empty config.
TokenizerConfig read_tokenizer_config(const std::string& path, const TokenIdLimit& ids = {});

}  // namespace qsft
