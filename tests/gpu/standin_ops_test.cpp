// The GPU tests' stand-in backend (tests/gpu/standin_ops.h) on its own: host code, so it runs in every mode. It
// reports Device::CUDA and copies to and from its memory for real; an operand outside its allocations (a host
// pointer, a view past its buffer) is a misuse, recorded and thrown; a host copy, a wait or an allocation inside a
// graph capture invalidates the capture, as on the GPU.
#include "tests/gpu/standin_ops.h"

#include <functional>

#include "tests/gpu/gpu_test_util.h"

namespace qsft::test {
namespace {

bool mentions(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(StandinOps, CopiesRoundTripAndOpsCheckTheirArguments) {
  const std::unique_ptr<Ops> ops = make_standin_ops();
  EXPECT_EQ(ops->device(), Device::CUDA);
  OpsTensor x(*ops, DType::F32, {2, 3}), y(*ops, DType::F32, {5});
  x.set({1, 2, 3, 4, 5, 6});
  EXPECT_EQ(x.get(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_THROW(ops->add_inplace(y.t, x.t), std::logic_error);  // Ops' own check: 6 elements into 5
  EXPECT_TRUE(take_standin_misuses().empty());
}

TEST(StandinOps, AnOperandOutsideItsAllocationsIsAMisuse) {
  const std::unique_ptr<Ops> ops = make_standin_ops();
  OpsTensor x(*ops, DType::F32, {2, 3}), packed(*ops, DType::F32, {2, 2});
  std::vector<float> host(6);
  const Tensor on_host(host.data(), DType::F32, {2, 3}, Device::CUDA);  // host memory said to be the device's
  EXPECT_THROW(ops->add_inplace(x.t, on_host), std::logic_error);
  std::vector<std::string> m = take_standin_misuses();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_TRUE(mentions(m[0], "add_inplace")) << m[0];

  Tensor rows(x.t.data, DType::F32, {2, 2}, Device::CUDA);  // 2 rows of 2, 3 apart: inside the 6 elements
  rows.row_stride = 3;
  ops->copy(packed.t, rows);
  rows.row_stride = 5;  // the second row ends at element 7: past the buffer
  EXPECT_THROW(ops->copy(packed.t, rows), std::logic_error);
  Tensor longer(x.t.data, DType::F32, {7}, Device::CUDA);
  EXPECT_THROW(ops->scale_inplace(longer, 2.0f), std::logic_error);
  EXPECT_THROW(ops->copy_to_host(host.data(), x.t.data, 7 * sizeof(float)), std::logic_error);
  EXPECT_EQ(take_standin_misuses().size(), 3u);

  ops->free_bytes(host.data());  // never throws (destructors call it): recorded only
  m = take_standin_misuses();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_TRUE(mentions(m[0], "free_bytes")) << m[0];
}

TEST(StandinOps, AHostCopyAWaitOrAnAllocationInvalidatesACapture) {
  const std::unique_ptr<Ops> ops = make_standin_ops();
  OpsTensor x(*ops, DType::F32, {4});
  ASSERT_TRUE(ops->can_capture());
  std::string why;
  ops->begin_capture();
  ops->scale_inplace(x.t, 2.0f);
  const std::unique_ptr<Ops::Graph> g = ops->end_capture(&why);
  ASSERT_TRUE(g) << why;
  EXPECT_TRUE(ops->replay(*g));
  const std::vector<std::pair<const char*, std::function<void()>>> breaking = {
      {"synchronize", [&] { ops->synchronize(); }},
      {"copy_to_device", [&] { x.set(std::vector<float>(4, 1.0f)); }},
      {"copy_to_host", [&] { x.get(); }},
      {"sum_squares", [&] { ops->sum_squares(x.t); }},
      {"alloc_bytes", [&] { ops->free_bytes(ops->alloc_bytes(16)); }},
  };
  for (const auto& [what, step] : breaking) {
    ops->begin_capture();
    step();
    why.clear();
    EXPECT_FALSE(ops->end_capture(&why)) << what;
    EXPECT_TRUE(mentions(why, what)) << why;
  }
  EXPECT_TRUE(take_standin_misuses().empty());
}

}  // namespace
}  // namespace qsft::test
