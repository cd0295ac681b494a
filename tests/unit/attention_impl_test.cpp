// The host-side choice of the CUDA attention implementation (kernels/attention_impl.h): QSFT_ATTENTION's values and
// the refusal of the wgmma kernels on any device but compute capability 9.0. Plain C++: runs in CPU builds.
#include <gtest/gtest.h>

#include <stdexcept>

#include "kernels/attention_impl.h"

namespace qsft::cuda {
namespace {

TEST(AttentionImpl, ParsesTheVariable) {
  EXPECT_EQ(parse_attention_impl(nullptr), AttentionImpl::Mma);
  EXPECT_EQ(parse_attention_impl(""), AttentionImpl::Mma);
  EXPECT_EQ(parse_attention_impl("mma"), AttentionImpl::Mma);
  EXPECT_EQ(parse_attention_impl("wmma"), AttentionImpl::Wmma);
  EXPECT_EQ(parse_attention_impl("wgmma"), AttentionImpl::Wgmma);
}

// Unset means the device's default: mma everywhere but compute capability 9.0, where kWgmmaByDefault decides.
TEST(AttentionImpl, UnsetMeansTheDevicesDefault) {
  EXPECT_EQ(parse_attention_impl(nullptr, AttentionImpl::Wgmma), AttentionImpl::Wgmma);
  EXPECT_EQ(parse_attention_impl("mma", AttentionImpl::Wgmma), AttentionImpl::Mma);
  for (auto [major, minor] : {std::pair{8, 0}, {8, 6}, {8, 9}, {10, 0}, {12, 0}, {9, 1}})
    EXPECT_EQ(default_attention_impl(major, minor), AttentionImpl::Mma) << major << "." << minor;
  EXPECT_EQ(default_attention_impl(9, 0), kWgmmaByDefault ? AttentionImpl::Wgmma : AttentionImpl::Mma);
}

TEST(AttentionImpl, UnknownValueNamesTheVariable) {
  try {
    parse_attention_impl("WGMMA");
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("QSFT_ATTENTION=WGMMA"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("wgmma"), std::string::npos) << e.what();
  }
}

TEST(AttentionImpl, WgmmaOnlyOnComputeCapability90) {
  EXPECT_EQ(wgmma_device_refusal("QSFT_ATTENTION=wgmma", "device 0 (NVIDIA H200)", 9, 0), "");
  for (auto [major, minor] : {std::pair{8, 0}, {8, 9}, {10, 0}, {12, 0}, {9, 1}}) {
    const std::string why = wgmma_device_refusal("QSFT_ATTENTION=wgmma", "device 1 (Some GPU)", major, minor);
    EXPECT_NE(why.find("QSFT_ATTENTION=wgmma"), std::string::npos) << why;
    EXPECT_NE(why.find("device 1 (Some GPU)"), std::string::npos) << why;
    EXPECT_NE(why.find(std::to_string(major) + "." + std::to_string(minor)), std::string::npos) << why;
  }
}

}  // namespace
}  // namespace qsft::cuda
