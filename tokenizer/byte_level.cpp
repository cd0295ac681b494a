#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace qsft::byte_level {

static bool shown_as_itself(unsigned b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

static const std::array<char32_t, 256>& byte_to_char() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (unsigned b = 0; b < 256; ++b) t[b] = shown_as_itself(b) ? b : next++;
    return t;
  }();
  return table;
}

char32_t char_of_byte(unsigned char b) { return byte_to_char()[b]; }

std::optional<std::string> to_bytes(std::string_view token) {
  static const std::array<int, 324> char_to_byte = [] {
    std::array<int, 324> t;
    t.fill(-1);
    for (unsigned b = 0; b < 256; ++b) t[byte_to_char()[b]] = static_cast<int>(b);
    return t;
  }();
  if (utf8::find_invalid(token) != std::string_view::npos) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < token.size();) {
    size_t len;
    char32_t cp = utf8::decode(token, i, &len);
    if (cp >= char_to_byte.size() || char_to_byte[cp] < 0) return std::nullopt;
    out += static_cast<char>(char_to_byte[cp]);
    i += len;
  }
  return out;
}

}  // namespace qsft::byte_level
