// Shared by the fuzz targets: a private scratch folder to write inputs into (the readers under test take paths),
// and the rule that decides what is a finding. Bad input must end in an InputError (exit 2, the message naming the
// file); any other exception escapes LLVMFuzzerTestOneInput, which libFuzzer reports as a crash.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "engine/base/error.h"

namespace qsft::fuzz {

// $TMPDIR/qsft-fuzz-PID, created on first use, removed at exit.
inline const std::filesystem::path& scratch_dir() {
  struct Dir {
    std::filesystem::path path;
    Dir() {
      const char* tmp = std::getenv("TMPDIR");
      path = std::filesystem::path(tmp && *tmp ? tmp : "/tmp") / ("qsft-fuzz-" + std::to_string(::getpid()));
      std::filesystem::create_directories(path);
    }
    ~Dir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static Dir dir;
  return dir.path;
}

// Writes bytes to scratch_dir()/name (replacing it) and returns the path.
inline std::string write_file(const std::string& name, std::string_view bytes) {
  const std::filesystem::path path = scratch_dir() / name;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  out.close();
  if (!out) {
    std::perror(path.c_str());
    std::abort();  // the harness cannot work: not a finding, but stop loudly
  }
  return path.string();
}

// A property the code under test promises failed: abort, so that libFuzzer keeps the input.
inline void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz property violated: %s\n", what);
  std::abort();
}

// Runs fn; an InputError is the expected answer to bad input and ends the run quietly, but its message must say
// where the bad input is (`names`: the file's path or name, or e.g. "--set" for an override), as every input error
// of the project does.
template <class F>
void expect_input_errors(std::initializer_list<std::string_view> names, F&& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    const std::string_view what = e.what();
    for (std::string_view name : names)
      if (what.find(name) != std::string_view::npos) return;
    std::fprintf(stderr, "InputError that does not say where (%s...): %s\n", names.begin()->data(), e.what());
    std::abort();
  }
}

// The input split at its first NUL byte: what comes before, and after (empty when there is no NUL).
inline std::pair<std::string_view, std::string_view> split_at_nul(std::string_view input) {
  const size_t nul = input.find('\0');
  if (nul == std::string_view::npos) return {input, {}};
  return {input.substr(0, nul), input.substr(nul + 1)};
}

}  // namespace qsft::fuzz
