// CUDA launcher of AdamW (kernels/adamw.h is the reference, with the same scalars computed on the host in double
// and the same per-element fp32 operations, torch's lerp and addcdiv order included).
#pragma once
#include <cstdint>

#include "kernels/adamw.h"

namespace qsft::cuda {

// p, g, m, v F32 [n] on the device; p, m, v updated in place.
void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const cpu::AdamWHyper& hyper, void* stream);

}  // namespace qsft::cuda
