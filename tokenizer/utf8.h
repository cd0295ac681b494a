// UTF-8 helpers shared by the tokenizer: decoding one code point, encoding one, and the lossy conversion of
// arbitrary bytes to valid UTF-8 that Hugging Face decoders use (Rust's String::from_utf8_lossy).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace qsft::utf8 {

// Decodes the code point that starts at s[i] and stores its byte length in *len. Input must be valid UTF-8
// (the tokenizer validates text once, on entry).
inline char32_t decode(std::string_view s, size_t i, size_t* len) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = b(0);
  if (c < 0x80) return *len = 1, c;
  if (c < 0xE0) return *len = 2, ((c & 0x1Fu) << 6) | (b(1) & 0x3Fu);
  if (c < 0xF0) return *len = 3, ((c & 0x0Fu) << 12) | ((b(1) & 0x3Fu) << 6) | (b(2) & 0x3Fu);
  return *len = 4, ((c & 0x07u) << 18) | ((b(1) & 0x3Fu) << 12) | ((b(2) & 0x3Fu) << 6) | (b(3) & 0x3Fu);
}

// Appends the UTF-8 encoding of cp to out.
void append(std::string& out, char32_t cp);

// Byte offset of the first invalid sequence in s, or npos when s is valid UTF-8 (no surrogates, no overlongs).
size_t find_invalid(std::string_view s);

// s with every maximal invalid subsequence replaced by U+FFFD, as Rust's String::from_utf8_lossy does.
std::string to_valid_lossy(std::string_view s);

}  // namespace qsft::utf8
