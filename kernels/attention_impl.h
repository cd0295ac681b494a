// Which attention implementation runs (QSFT_ATTENTION) and whether a device can run the wgmma one: the host-side
// decisions of kernels/attention_cuda.h, in plain C++ (header-only: the CUDA library and the CPU build's unit test,
// tests/unit/attention_impl_test.cpp, share it without a link dependency between them).
#pragma once
#include <cstring>
#include <stdexcept>
#include <string>

namespace qsft::cuda {

// mma: mma.sync kernels (attention_mma*.cu, the default but on compute capability 9.0); wmma: WMMA kernels
// (attention.cu, attention_bwd.cu); wgmma: Hopper warpgroup MMA (attention_wgmma*.cu, sm_90a only, the default there).
enum class AttentionImpl { Mma, Wmma, Wgmma };

// What an unset QSFT_ATTENTION means on a device of compute capability major.minor: wgmma on 9.0 (the only devices
// that run it), mma everywhere else. The H200 run of 45ffbc3 validated wgmma (probe and the whole attention test)
// and timed it faster than mma at the 7B and 0.5B shapes, forward and backward (docs/cuda-backend.md, "What decides
// the default"); kWgmmaByDefault = false would make mma the default on 9.0 again.
constexpr bool kWgmmaByDefault = true;
inline AttentionImpl default_attention_impl(int major, int minor) {
  return kWgmmaByDefault && major == 9 && minor == 0 ? AttentionImpl::Wgmma : AttentionImpl::Mma;
}

// QSFT_ATTENTION's value: null or empty means `unset` (default_attention_impl); anything but mma / wmma / wgmma
// throws std::invalid_argument naming the variable.
inline AttentionImpl parse_attention_impl(const char* value, AttentionImpl unset = AttentionImpl::Mma) {
  if (!value || !*value) return unset;
  if (std::strcmp(value, "mma") == 0) return AttentionImpl::Mma;
  if (std::strcmp(value, "wmma") == 0) return AttentionImpl::Wmma;
  if (std::strcmp(value, "wgmma") == 0) return AttentionImpl::Wgmma;
  throw std::invalid_argument(std::string("QSFT_ATTENTION=") + value + ": expected mma, wmma or wgmma");
}

// Empty when a device of compute capability major.minor runs the wgmma kernels (exactly 9.0: they are built for
// sm_90a, whose features exist on no other); otherwise the error: `who` (the variable or launcher that asked), the
// device and what to use instead.
inline std::string wgmma_device_refusal(const std::string& who, const std::string& device, int major, int minor) {
  if (major == 9 && minor == 0) return "";
  return who + ": the wgmma attention runs only on compute capability 9.0 GPUs (H100/H200: sm_90a kernels); " +
         device + " is " + std::to_string(major) + "." + std::to_string(minor) +
         " (unset QSFT_ATTENTION for the default mma kernels)";
}

}  // namespace qsft::cuda
