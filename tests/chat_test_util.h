// Helpers of the chat format tests: reading a conversation and the text of its trained token runs.
#pragma once
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/chat_format.h"
#include "tokenizer/conversation_json.h"

namespace qsft::test {

inline Conversation conversation(std::string_view json) { return parse_conversation_json(json, "test"); }

// The decoded text of each run of trained tokens.
inline std::vector<std::string> trained_runs(const Encoded& e, const Tokenizer& tok) {
  std::vector<std::string> runs;
  for (size_t i = 0; i < e.ids.size();) {
    if (!e.mask[i]) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < e.ids.size() && e.mask[j]) ++j;
    runs.push_back(tok.decode(std::span(e.ids).subspan(i, j - i)));
    i = j;
  }
  return runs;
}

}  // namespace qsft::test
