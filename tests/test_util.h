// Helpers every test shares: where the test data lives (skipping loudly when it is absent), temporary
// directories, reading files and catching InputError messages.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "engine/base/error.h"
#include "engine/io/model_config.h"

namespace qsft::test {

// A small Qwen2 shape for layout and checkpoint tests (no weights): GQA 4/2, head_dim 4, two layers.
inline Qwen2Config small_qwen2_config() {
  Qwen2Config c;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  c.vocab_size = 32;
  return c;
}

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

// An empty directory of the test's own: <temp>/qsft_<name>_<pid>, emptied first if an earlier run left it.
inline std::filesystem::path fresh_temp_dir(const std::string& name) {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("qsft_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// fresh_temp_dir removed when it goes out of scope (also when an ASSERT returns early); `dir / "name"` and
// passing it where a path is taken work as with the path itself.
class ScopedTempDir {
 public:
  explicit ScopedTempDir(const std::string& name) : path_(fresh_temp_dir(name)) {}
  ~ScopedTempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  operator const std::filesystem::path&() const { return path_; }
  std::filesystem::path operator/(const std::filesystem::path& p) const { return path_ / p; }

 private:
  std::filesystem::path path_;
};

// A fixture giving every test an empty directory dir_ (named after the suite and the test), removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fresh_temp_dir(std::string(test->test_suite_name()) + "_" + test->name());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
};

// The bytes of a file ("" when it cannot be read).
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// The message of the InputError that `f` throws (fails the test if it throws nothing or something else).
inline std::string input_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected InputError, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected InputError, nothing was thrown";
  return "";
}

}  // namespace qsft::test

// Skip the test, printing why, when a path it needs is absent.
#define QSFT_REQUIRE_PATH(p)                                                                                \
  do {                                                                                                      \
    if (!std::filesystem::exists(p)) GTEST_SKIP() << "skipped: " << (p) << " is absent (shared test data)"; \
  } while (0)
