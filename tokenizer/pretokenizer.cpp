#include "tokenizer/pretokenizer.h"

#include "tokenizer/unicode_props.h"
#include "tokenizer/utf8.h"

namespace qsft {

using unicode::CharClass;

namespace {

// The text decoded once: code point, class and byte offset of each character (offset[n] = text size).
struct Decoded {
  std::vector<char32_t> cp;
  std::vector<CharClass> cls;
  std::vector<uint32_t> offset;

  void assign(std::string_view text) {
    cp.clear(), cls.clear(), offset.clear();
    for (size_t i = 0; i < text.size();) {
      size_t len = 1;
      unsigned char c = static_cast<unsigned char>(text[i]);
      char32_t v = c < 0x80 ? c : utf8::decode(text, i, &len);
      cp.push_back(v);
      cls.push_back(unicode::char_class(v));
      offset.push_back(static_cast<uint32_t>(i));
      i += len;
    }
    offset.push_back(static_cast<uint32_t>(text.size()));
  }
  size_t size() const { return cp.size(); }
  bool is_space(size_t k) const { return cls[k] == CharClass::kSpace || cls[k] == CharClass::kNewline; }
};

// Case-insensitive equality with an ASCII letter, as the regex engine folds case (U+017F LONG S folds to 's').
bool folds_to(char32_t c, char lower) {
  if (c == static_cast<char32_t>(lower) || c == static_cast<char32_t>(lower - 'a' + 'A')) return true;
  return lower == 's' && c == 0x17F;
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d): length in code points, or 0.
size_t match_contraction(const Decoded& d, size_t k) {
  if (d.cp[k] != '\'' || k + 1 >= d.size()) return 0;
  auto at = [&](size_t j, char lower) { return k + j < d.size() && folds_to(d.cp[k + j], lower); };
  if (at(1, 's') || at(1, 't') || at(1, 'm') || at(1, 'd')) return 2;
  if ((at(1, 'r') && at(2, 'e')) || (at(1, 'v') && at(2, 'e')) || (at(1, 'l') && at(2, 'l'))) return 3;
  return 0;
}

size_t run_end(const Decoded& d, size_t k, CharClass c) {
  while (k < d.size() && d.cls[k] == c) ++k;
  return k;
}

// End (exclusive, in code points) of the piece that starts at k.
size_t piece_end(const Decoded& d, size_t k) {
  const size_t n = d.size();
  if (size_t len = match_contraction(d, k)) return k + len;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (d.cls[k] == CharClass::kLetter) return run_end(d, k, CharClass::kLetter);
  if (d.cls[k] != CharClass::kNewline && d.cls[k] != CharClass::kNumber && k + 1 < n &&
      d.cls[k + 1] == CharClass::kLetter)
    return run_end(d, k + 1, CharClass::kLetter);
  // \p{N}
  if (d.cls[k] == CharClass::kNumber) return k + 1;
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  size_t j = (d.cp[k] == ' ' && k + 1 < n && d.cls[k + 1] == CharClass::kOther) ? k + 1 : k;
  if (d.cls[j] == CharClass::kOther) return run_end(d, run_end(d, j, CharClass::kOther), CharClass::kNewline);
  // Only whitespace is left: k starts a run of it.
  size_t ws_end = k;
  size_t last_newline = n;
  for (; ws_end < n && d.is_space(ws_end); ++ws_end)
    if (d.cls[ws_end] == CharClass::kNewline) last_newline = ws_end;
  // \s*[\r\n]+ : up to and including the last newline of the run.
  if (last_newline != n) return last_newline + 1;
  // \s+(?!\S) : the run, less its last character when a non-space follows; else \s+.
  if (ws_end < n && ws_end - k >= 2) return ws_end - 1;
  return ws_end;
}

}  // namespace

void pretokenize_qwen2(std::string_view text, std::vector<ByteSpan>& pieces) {
  thread_local Decoded d;
  d.assign(text);
  for (size_t k = 0; k < d.size();) {
    size_t e = piece_end(d, k);
    pieces.push_back({d.offset[k], d.offset[e]});
    k = e;
  }
}

}  // namespace qsft
