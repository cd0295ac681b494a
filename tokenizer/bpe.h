// Byte-level BPE: a pre-token's bytes start as one token per byte and adjacent pairs are merged by rank (lowest
// first, leftmost first among equal ranks) until no known merge is left, as Hugging Face's BPE model does.
// Results are cached per piece. Thread-safe: encode_piece may be called from many threads at once.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace qsft {

class BpeCache;

// Token ids index arrays: every id lies in [0, kMaxTokenIds), far above any real vocabulary (Qwen2: 151,665).
constexpr int32_t kMaxTokenIds = int32_t{1} << 24;

class BpeModel {
 public:
  struct Merge {
    std::string left, right;  // raw bytes
  };

  // vocab: raw token bytes -> id in [0, kMaxTokenIds); merges in rank order. Every byte must be a token, and both
  // halves of a merge and their concatenation must be in vocab (std::invalid_argument names the first that is not).
  // ignore_merges: a piece that is itself a token is taken whole (Hugging Face's BPE option of that name).
  BpeModel(std::unordered_map<std::string, int32_t> vocab, const std::vector<Merge>& merges, bool ignore_merges);
  BpeModel(BpeModel&&) noexcept;
  BpeModel& operator=(BpeModel&&) noexcept;
  ~BpeModel();

  // Appends the ids of one pre-token (raw bytes) to out.
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

  // -1 when bytes are not a token.
  int32_t id_of(std::string_view bytes) const;
  // Raw bytes of token id; empty for an id the vocabulary does not use.
  const std::string& bytes_of(int32_t id) const { return id_to_bytes_[static_cast<size_t>(id)]; }
  // One past the largest id.
  int32_t id_limit() const { return static_cast<int32_t>(id_to_bytes_.size()); }

 private:
  struct PairTable;
  void merge(std::string_view piece, std::vector<int32_t>& out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_bytes_;
  int32_t byte_id_[256];
  std::unique_ptr<PairTable> pairs_;
  std::unique_ptr<BpeCache> cache_;
  bool ignore_merges_;
};

}  // namespace qsft
