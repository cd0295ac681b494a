#include "tokenizer/unicode_props.h"

#include <utf8proc.h>

#include <array>
#include <memory>

namespace qsft::unicode {

static bool is_white_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

static bool is_hangul(char32_t cp) { return (cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0xAC00 && cp <= 0xD7A3); }

static Props compute(char32_t cp) {
  const utf8proc_property_t* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(cp));
  CharClass cls = CharClass::kOther;
  if (cp == '\r' || cp == '\n') {
    cls = CharClass::kNewline;
  } else if (is_white_space(cp)) {
    cls = CharClass::kSpace;
  } else if (p->category >= UTF8PROC_CATEGORY_LU && p->category <= UTF8PROC_CATEGORY_LO) {
    cls = CharClass::kLetter;
  } else if (p->category >= UTF8PROC_CATEGORY_ND && p->category <= UTF8PROC_CATEGORY_NO) {
    cls = CharClass::kNumber;
  }
  bool canonical_decomposition = p->decomp_seqindex != UINT16_MAX && p->decomp_type == 0;
  bool inert = p->combining_class == 0 && !canonical_decomposition && p->comb_index == UINT16_MAX && !is_hangul(cp);
  return {cls, inert};
}

Props props(char32_t cp) {
  // The Basic Multilingual Plane is tabulated once; other planes are rare and looked up directly.
  static const std::unique_ptr<std::array<Props, 0x10000>> bmp = [] {
    auto t = std::make_unique<std::array<Props, 0x10000>>();
    for (char32_t c = 0; c < 0x10000; ++c) (*t)[c] = compute(c);
    return t;
  }();
  return cp < 0x10000 ? (*bmp)[cp] : compute(cp);
}

}  // namespace qsft::unicode
