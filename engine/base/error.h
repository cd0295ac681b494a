// Errors shared by every library. The CLI prints what() once and exits 2 for InputError (bad input: a file, a
// record, a config key), 1 for any other exception (an internal error).
#pragma once
#include <stdexcept>
#include <string>

namespace qsft {

// Bad input from the user: the message names the file and the record/tensor/key, and what was expected vs got.
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// "path: what" — the one format every input error uses.
inline InputError input_error(const std::string& path, const std::string& what) {
  return InputError(path + ": " + what);
}

// An internal invariant that does not hold (a bug, not bad input).
#define QSFT_CHECK(cond, msg)                                                                                      \
  do {                                                                                                             \
    if (!(cond))                                                                                                   \
      throw std::logic_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": check failed: " + #cond + \
                             ": " + (msg));                                                                        \
  } while (0)

}  // namespace qsft
