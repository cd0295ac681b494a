// The GPU tests' stand-in mode (QSFT_GPU_STANDIN=1 on a machine without a GPU; ctest's "standin" label): `gpu` is a
// host backend that reports Device::CUDA, keeps its "device" memory in host memory and computes nothing, so every
// Ops argument check, the engine's host paths (model step, planner, arenas, scratch sizing, generation's graph
// logic) and the tests' own logic run as on a GPU, in seconds. What counts there (tests/gpu/gpu_test_main.cpp): an
// exception thrown in a test, a crash, or a misuse the stand-in detects (an operand outside every allocation of the
// backend: a host pointer, or a view past its buffer). Checks of values do not count: nothing is computed.
// With a GPU present or QSFT_REQUIRE_GPU=1 the stand-in is never used.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/ops.h"

namespace qsft::test {

// QSFT_GPU_STANDIN is set (not "" or "0"), QSFT_REQUIRE_GPU is not, and no CUDA device is usable. Decided once.
bool standin_mode();
std::unique_ptr<Ops> make_standin_ops();
// The misuses the stand-in backends detected since the last call (each also thrown as std::logic_error where it
// happened, except in free_bytes, which never throws), oldest first.
std::vector<std::string> take_standin_misuses();

}  // namespace qsft::test
