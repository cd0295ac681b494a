// The LoRA branch of an adapted Linear, over Ops::gemm. The base GEMM is the caller's (it may be fused with
// neighbours); this adds scaling * (dropout(x) A^T) B^T to the output and back-propagates through it.
//   forward:  u = xd A^T                       xd = dropout(x) [T, in], A [r, in], u [T, r] (saved)
//             y += s * u B^T                   B [out, r], y [T, out] (a column slice is fine)
//   backward: dB += s * dy^T u                 [out, r]
//             du = s * dy B                    [T, r]
//             dA += du^T xd                    [r, in]   (xd regenerated from the same dropout seed)
//             dx += du A                       [T, in]
#pragma once
#include "engine/ops.h"

namespace qsft {

struct LoraBranch {
  Tensor A, B;    // parameters [r, in], [out, r] in the compute dtype (views of the flat buffer's compute copy)
  Tensor dA, dB;  // F32 gradients, same shapes (accumulated)
  float scaling = 1.0f;
  float dropout = 0.0f;  // probability; 0 = identity
  uint64_t seed = 0;     // dropout mask seed for this module in this micro-batch
};

// x [T, in], u [T, r] (saved for backward), y: output rows [T, out] (may be a column slice), xd_scratch [T, >= in]
void lora_forward(Ops& ops, const LoraBranch& l, const Tensor& x, Tensor& u, const Tensor& y, Tensor& xd_scratch);
// dy [T, out] (may be a column slice), dx [T, in] accumulated; du_scratch [T, r]
void lora_backward(Ops& ops, const LoraBranch& l, const Tensor& x, const Tensor& u, const Tensor& dy, Tensor& dx,
                   Tensor& du_scratch, Tensor& xd_scratch);

}  // namespace qsft
