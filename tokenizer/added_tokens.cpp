#include "tokenizer/added_tokens.h"

#include <algorithm>

namespace qsft {

AddedTokenMatcher::AddedTokenMatcher(std::vector<const AddedToken*> tokens) : by_length_(std::move(tokens)) {
  std::erase_if(by_length_, [](const AddedToken* t) { return t->content.empty(); });
  std::stable_sort(by_length_.begin(), by_length_.end(),
                   [](const AddedToken* a, const AddedToken* b) { return a->content.size() > b->content.size(); });
  for (const AddedToken* t : by_length_) first_byte_[static_cast<unsigned char>(t->content[0])] = true;
}

AddedTokenMatcher::Match AddedTokenMatcher::find(std::string_view text, size_t from) const {
  if (by_length_.empty()) return {};
  for (size_t i = from; i < text.size(); ++i) {
    if (!first_byte_[static_cast<unsigned char>(text[i])]) continue;
    std::string_view rest = text.substr(i);
    for (const AddedToken* t : by_length_)
      if (rest.starts_with(t->content)) return {i, i + t->content.size(), t};
  }
  return {};
}

}  // namespace qsft
