#include "tokenizer/nfc.h"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "engine/base/error.h"
#include "tokenizer/unicode_props.h"
#include "tokenizer/utf8.h"

namespace qsft {

// NFC of one run of text (utf8proc allocates the result).
static void append_nfc(std::string_view run, std::string& out) {
  utf8proc_uint8_t* result = nullptr;
  auto n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(run.data()), static_cast<utf8proc_ssize_t>(run.size()),
                   &result, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  QSFT_CHECK(n >= 0, utf8proc_errmsg(n));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(result, &std::free);
  out.append(reinterpret_cast<const char*>(result), static_cast<size_t>(n));
}

std::string_view nfc(std::string_view s, std::string* storage) {
  // The text splits into independent runs at NFC-inert code points: NFC never changes them and no reordering or
  // composition crosses them. A run can change only if it holds a non-ASCII code point.
  size_t copied_to = 0;  // s[0, copied_to) has been appended to *storage (only once something changed)
  bool changed = false;
  size_t run_start = 0;
  bool run_has_non_ascii = false;
  std::string normalized;
  auto end_run = [&](size_t run_end) {
    if (!run_has_non_ascii) return;
    run_has_non_ascii = false;
    std::string_view run = s.substr(run_start, run_end - run_start);
    normalized.clear();
    append_nfc(run, normalized);
    if (normalized == run) return;
    if (!changed) storage->clear(), changed = true;
    storage->append(s.substr(copied_to, run_start - copied_to));
    storage->append(normalized);
    copied_to = run_end;
  };
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = 1;
    char32_t cp = c < 0x80 ? c : utf8::decode(s, i, &len);
    if (unicode::props(cp).nfc_inert) {
      end_run(i);
      run_start = i + len;
    } else if (c >= 0x80) {
      run_has_non_ascii = true;
    }
    i += len;
  }
  end_run(s.size());
  if (!changed) return s;
  storage->append(s.substr(copied_to));
  return *storage;
}

}  // namespace qsft
