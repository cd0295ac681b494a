// Greedy decoding's choice on the device: the index of each row's largest value, the first of equal maxima (as
// torch.argmax and std::max_element; engine/generate/sampling.cpp's greedy choice).
#pragma once
#include <cstdint>

namespace qsft::cpu {

// out[r] = first argmax of x[r, :].   x [R, V] (V >= 1), out [R]
void argmax_rows(const float* x, int64_t R, int64_t V, int32_t* out);

}  // namespace qsft::cpu
