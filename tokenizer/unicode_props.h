// The Unicode properties the tokenizer needs, looked up once per code point: the character class the Qwen2
// pre-tokenizer distinguishes, and whether NFC can ever change a code point or its neighbours.
#pragma once
#include <cstdint>

namespace qsft::unicode {

enum class CharClass : uint8_t {
  kLetter,   // \p{L}: Lu Ll Lt Lm Lo
  kNumber,   // \p{N}: Nd Nl No
  kNewline,  // \r or \n
  kSpace,    // any other White_Space code point (\s)
  kOther,    // everything else
};

struct Props {
  CharClass cls;
  // NFC leaves the code point alone and no composition or reordering crosses it: canonical combining class 0,
  // no canonical decomposition, not part of any canonical composition (nor Hangul).
  bool nfc_inert;
};

Props props(char32_t cp);

inline CharClass char_class(char32_t cp) { return props(cp).cls; }

}  // namespace qsft::unicode
