// The Qwen2 byte-level BPE tokenizer, equal to Hugging Face tokenizers on every input: added tokens matched on
// the raw text, NFC, the Qwen2 pre-tokenizer, BPE by merge rank; decode maps bytes back to UTF-8.
// Thread-safe: encode and decode may be called from many threads on one Tokenizer.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/base/error.h"  // InputError, which the functions below throw
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenizer.h"

namespace qsft {

struct TokenizerParts;

class Tokenizer {
 public:
  // From a model folder: tokenizer.json, or vocab.json + merges.txt when it is absent; tokenizer_config.json
  // (optional) names the bos/eos/pad tokens. Bad or unsupported files: InputError naming the file and field.
  // Token ids must be unique and below the model's vocab_size when the folder's config.json gives it.
  static Tokenizer load(const std::string& model_dir);

  // Token ids of text (valid UTF-8, else InputError). add_special_tokens applies the post-processor, as
  // Hugging Face's encode(text) does by default (DeepSeek-R1-Distill: BOS first; Qwen2.5: nothing).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const;
  // Appends the ids of text to ids (no post-processor) and, when spans is given, each token's byte range in the
  // normalised text (for NFC text: in text itself).
  void encode_into(std::string_view text, std::vector<int32_t>& ids, std::vector<ByteSpan>* spans) const;

  // The text of ids: token bytes joined, invalid UTF-8 replaced by U+FFFD. Ids out of range: InputError.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // The normaliser alone (NFC for Qwen2).
  std::string normalize(std::string_view text) const;

  // Id of a token given by its text (an added token's content, or a vocabulary token in the byte-level
  // alphabet, e.g. "Ġthe"); -1 when there is none.
  int32_t token_id(std::string_view token) const;
  bool is_special(int32_t id) const;

  int32_t bos_id() const { return bos_id_; }  // -1: the model has none
  int32_t eos_id() const { return eos_id_; }
  int32_t pad_id() const { return pad_id_; }
  // One past the largest id (vocabulary and added tokens); the model's embedding may be larger (padded).
  int32_t vocab_size() const { return vocab_size_; }

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

 private:
  explicit Tokenizer(TokenizerParts parts);
  void encode_normalized(std::string_view text, size_t base, std::vector<int32_t>& ids,
                         std::vector<ByteSpan>* spans) const;
  void encode_ordinary(std::string_view text, size_t base, std::vector<int32_t>& ids,
                       std::vector<ByteSpan>* spans) const;

  BpeModel bpe_;
  struct AddedEntry {
    const AddedToken* token;
    std::string bytes;  // what decode gives for it
  };
  std::vector<std::unique_ptr<AddedToken>> added_;
  std::unordered_map<int32_t, AddedEntry> added_by_id_;
  AddedTokenMatcher raw_matcher_;         // tokens matched before normalisation
  AddedTokenMatcher normalized_matcher_;  // tokens matched after it
  bool nfc_;
  std::vector<int32_t> prefix_ids_, suffix_ids_;
  int32_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
  int32_t vocab_size_ = 0;
};

}  // namespace qsft
