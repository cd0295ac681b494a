// LoRA's A projections with dropout applied where x is read (Ops::lora_a_dropout, engine/model/lora_linear.h).
// The reference is Ops' default: each member's dropout (kernels/elementwise.h) then its GEMM (kernels/gemm.h);
// the CUDA kernel (kernels/lora_dropout_cuda.h) reads x once for all members of a stack.
#pragma once

namespace qsft::cpu {

// Members of one stack the op takes at most: q, k, v (engine/model/lora.h: kMaxLoraGroupSize).
constexpr int kLoraDropoutMaxMembers = 3;

}  // namespace qsft::cpu
