// Helpers every test shares: where the shared test data lives, and skipping loudly when it is absent.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace qsft::test {

// ../shared/testdata relative to the project root (QSFT_SHARED_TESTDATA overrides).
inline std::filesystem::path shared_testdata() {
  if (const char* env = std::getenv("QSFT_SHARED_TESTDATA")) return env;
  return std::filesystem::path(QSFT_SOURCE_DIR) / ".." / "shared" / "testdata";
}

// tests/data inside the repository (committed fixtures).
inline std::filesystem::path repo_testdata() { return std::filesystem::path(QSFT_SOURCE_DIR) / "tests" / "data"; }

// The qwen-sft binary under test (set by ctest; falls back to the build folder beside the test).
inline std::string qwen_sft_bin() {
  if (const char* env = std::getenv("QSFT_BIN")) return env;
  return "./qwen-sft";
}

}  // namespace qsft::test

// Skip the test, printing why, when a path it needs is absent.
#define QSFT_REQUIRE_PATH(p)                                                                            \
  do {                                                                                                  \
    if (!std::filesystem::exists(p)) GTEST_SKIP() << "skipped: " << (p) << " is absent (shared test data)"; \
  } while (0)
