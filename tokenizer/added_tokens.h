// Added tokens (special and not) are found in the text before anything else and never go through BPE. Matching
// is leftmost first, and at one position the longest token wins, as Hugging Face's added vocabulary does.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qsft {

struct AddedToken {
  int32_t id;
  std::string content;
  bool special;
  bool normalized;  // matched on the normalised text instead of the raw text
};

class AddedTokenMatcher {
 public:
  explicit AddedTokenMatcher(std::vector<const AddedToken*> tokens);

  struct Match {
    size_t begin = 0, end = 0;
    const AddedToken* token = nullptr;  // nullptr: no match
  };
  // The first match in text at or after byte from.
  Match find(std::string_view text, size_t from) const;
  bool empty() const { return by_length_.empty(); }

 private:
  std::vector<const AddedToken*> by_length_;  // longest first, so the first hit at a position is the longest
  bool first_byte_[256] = {};
};

}  // namespace qsft
