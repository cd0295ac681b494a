// main() of the GPU test binaries: GoogleTest's, plus in stand-in mode (tests/gpu/standin_ops.h) the rule of what
// counts. There a test fails on an exception thrown in it, on a misuse the stand-in detected, or on a check tagged
// kHostCheck (tests/gpu/gpu_test_util.h: host logic the stand-in runs for real); a crash fails the binary. Every other
// check compares values the stand-in never computed: it is counted, one line per test, not printed. Skips stay skips.
// With a GPU (or QSFT_REQUIRE_GPU=1) nothing is installed: GoogleTest as usual.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <memory>

#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/standin_ops.h"

namespace qsft::test {
namespace {

// A result that says something about the host logic: a skip, an exception escaping the test (GoogleTest's
// "... thrown in the test body." and the like), or a check tagged kHostCheck.
bool counts_on_standin(const testing::TestPartResult& r) {
  if (!r.failed()) return true;
  const char* m = r.message();
  return std::strstr(m, " thrown in ") || std::strstr(m, kHostCheck);
}

class StandinVerdict : public testing::EmptyTestEventListener {
 public:
  void OnTestProgramStart(const testing::UnitTest&) override {
    std::printf(
        "[ STAND-IN ] QSFT_GPU_STANDIN=1 and no GPU: `gpu` is the host stand-in backend; no kernel runs. A test "
        "fails only on an exception, a crash, a stand-in misuse or a host-logic check; value checks are not "
        "counted. A pass here is not a GPU pass.\n");
  }
  void OnTestProgramEnd(const testing::UnitTest& u) override {
    std::printf("[ STAND-IN ] %d tests ran on the stand-in backend: host logic only, no GPU result.\n",
                u.test_to_run_count());
  }
  // Every result of the test is caught here until OnTestEnd (called before the result printer's).
  void OnTestStart(const testing::TestInfo&) override {
    results_ = std::make_unique<testing::TestPartResultArray>();
    catcher_ = std::make_unique<testing::ScopedFakeTestPartResultReporter>(
        testing::ScopedFakeTestPartResultReporter::INTERCEPT_ALL_THREADS, results_.get());
  }
  void OnTestEnd(const testing::TestInfo&) override {
    catcher_.reset();  // GoogleTest's own reporter again: what is reported now is the test's result
    int values = 0;
    for (int i = 0; i < results_->size(); ++i) {
      const testing::TestPartResult& r = results_->GetTestPartResult(i);
      if (!counts_on_standin(r)) {
        ++values;
        continue;
      }
      GTEST_MESSAGE_AT_(r.file_name(), r.line_number(), r.message(), r.type());
    }
    for (const std::string& m : take_standin_misuses()) ADD_FAILURE() << "stand-in misuse: " << m;
    if (values) std::printf("[ STAND-IN ] %d value checks not counted (nothing is computed)\n", values);
  }

 private:
  std::unique_ptr<testing::TestPartResultArray> results_;
  std::unique_ptr<testing::ScopedFakeTestPartResultReporter> catcher_;
};

}  // namespace
}  // namespace qsft::test

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  if (qsft::test::standin_mode()) testing::UnitTest::GetInstance()->listeners().Append(new qsft::test::StandinVerdict);
  return RUN_ALL_TESTS();
}
