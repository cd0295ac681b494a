#include "tokenizer/bpe_trainer.h"

#include <algorithm>
#include <array>
#include <map>
#include <numeric>
#include <tuple>
#include <unordered_map>

#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/utf8.h"

namespace qsft {
namespace {

// The byte-level spelling of byte b (GPT-2's table: printable Latin-1 bytes as themselves, the rest U+0100...).
std::string byte_token(uint8_t b) {
  std::string s;
  utf8::append(s, byte_level::char_of_byte(b));
  return s;
}

// Token ids 0..255: the bytes ordered by their byte-level character (printable bytes first), as the GPT-2 and
// Qwen2 vocabularies list them.
std::array<uint8_t, 256> bytes_in_vocab_order() {
  std::array<uint8_t, 256> order;
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [](uint8_t a, uint8_t b) { return byte_level::char_of_byte(a) < byte_level::char_of_byte(b); });
  return order;
}

}  // namespace

ByteLevelBpe train_byte_level_bpe(std::string_view text, size_t vocab_size) {
  ByteLevelBpe bpe;
  std::map<std::string, int> id_of;  // token -> id
  std::array<int, 256> id_of_byte{};
  for (uint8_t b : bytes_in_vocab_order()) {
    id_of_byte[b] = int(bpe.vocab.size());
    id_of[byte_token(b)] = int(bpe.vocab.size());
    bpe.vocab.push_back(byte_token(b));
  }
  std::vector<ByteSpan> pieces;
  pretokenize_qwen2(text, pieces);
  std::map<std::string, int64_t> word_counts;
  for (ByteSpan p : pieces) ++word_counts[std::string(text.substr(p.begin, p.end - p.begin))];
  std::vector<std::pair<std::vector<int>, int64_t>> words;  // (token ids, occurrences)
  for (auto& [w, count] : word_counts) {
    std::vector<int> ids;
    for (unsigned char b : w) ids.push_back(id_of_byte[b]);
    words.emplace_back(std::move(ids), count);
  }
  while (bpe.vocab.size() < vocab_size) {
    std::unordered_map<uint64_t, int64_t> pair_counts;  // key: left id << 32 | right id
    for (auto& [ids, count] : words)
      for (size_t i = 0; i + 1 < ids.size(); ++i) pair_counts[uint64_t(ids[i]) << 32 | uint32_t(ids[i + 1])] += count;
    uint64_t best = 0;
    int64_t best_count = 0;
    auto tokens = [&](uint64_t key) { return std::tie(bpe.vocab[key >> 32], bpe.vocab[uint32_t(key)]); };
    for (auto [key, count] : pair_counts)
      if (count > best_count || (count == best_count && tokens(key) < tokens(best))) {
        best = key;
        best_count = count;
      }
    if (best_count < 2) break;  // a merge must be seen at least twice
    int left = int(best >> 32), right = int(uint32_t(best));
    std::string merged = bpe.vocab[left] + bpe.vocab[right];
    bpe.merges.emplace_back(bpe.vocab[left], bpe.vocab[right]);
    auto [it, is_new] = id_of.emplace(merged, int(bpe.vocab.size()));
    if (is_new) bpe.vocab.push_back(merged);  // else an earlier merge already spelled this token
    for (auto& [ids, count] : words) {
      std::vector<int> out;
      for (size_t i = 0; i < ids.size(); ++i) {
        bool hit = i + 1 < ids.size() && ids[i] == left && ids[i + 1] == right;
        out.push_back(hit ? it->second : ids[i]);
        i += hit;
      }
      ids = std::move(out);
    }
  }
  return bpe;
}

}  // namespace qsft
