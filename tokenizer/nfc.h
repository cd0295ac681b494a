// NFC normalisation (utf8proc) with a fast path: only the runs of text that NFC can change are handed to
// utf8proc; text that is already NFC (all ASCII, most CJK) is returned as it is, without a copy.
#pragma once
#include <string>
#include <string_view>

namespace qsft {

// NFC(s). Returns s itself when it is already normalised, otherwise a view of *storage, which holds the result.
// s must be valid UTF-8.
std::string_view nfc(std::string_view s, std::string* storage);

}  // namespace qsft
