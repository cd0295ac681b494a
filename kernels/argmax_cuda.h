// CUDA launcher of argmax_rows (kernels/argmax.h is the reference; same shapes and meaning).
#pragma once
#include <cstdint>

namespace qsft::cuda {

// x F32 [R, V], out I32 [R] on the device: one block per row.
void argmax_rows(const float* x, int64_t R, int64_t V, int32_t* out, void* stream);

}  // namespace qsft::cuda
