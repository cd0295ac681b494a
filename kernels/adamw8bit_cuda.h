// CUDA launcher of the 8-bit AdamW (kernels/adamw8bit.h is the reference; both run kernels/adamw8bit_math.h, so
// the same inputs give the same bits).
#pragma once
#include <cstdint>

#include "kernels/adamw8bit.h"

namespace qsft::cuda {

// p, g F32 [n]; the state's codes, absmax and maps on the device (cpu::AdamW8bitState's layout); weight decay on
// p[0, decayed) only.
void adamw8bit_step(float* p, const float* g, const cpu::AdamW8bitState& s, int64_t n, const cpu::AdamWHyper& hyper,
                    int64_t decayed, void* stream);

}  // namespace qsft::cuda
