// The byte-level alphabet of GPT-2 style BPE: every byte is shown as one printable code point (the printable
// Latin-1 bytes as themselves, the others as U+0100 upwards). Vocabulary files store tokens in this alphabet;
// the tokenizer works on raw bytes and converts only when loading and decoding.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace qsft::byte_level {

// The code point that shows byte b.
char32_t char_of_byte(unsigned char b);

// The raw bytes of a token written in the byte-level alphabet, or nullopt when it holds a code point outside
// that alphabet (or is not valid UTF-8).
std::optional<std::string> to_bytes(std::string_view token);

}  // namespace qsft::byte_level
