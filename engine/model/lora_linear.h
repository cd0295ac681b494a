// The LoRA branch of an adapted Linear, over Ops::gemm. The base GEMM is the caller's (it may be fused with
// neighbours); this adds scaling * (dropout(x) A^T) B^T to the output and back-propagates through it.
//   forward:  u = xd A^T                       xd = dropout(x) [T, in], A [r, in], u [T, r] (saved)
//             y += s * u B^T                   B [out, r], y [T, out] (a column slice is fine)
//   backward: dB += s * dy^T u                 [out, r]
//             du = s * dy B                    [T, r]
//             dA += du^T xd                    [r, in]   (xd regenerated from the same dropout seed)
//             dx += du A                       [T, in]
// A stack (lora.h: the adapted modules of a group, reading the same x) runs the A projections as one GEMM each way:
//   forward:  u = xd [A_1; ...; A_n]^T         [T, n*r], member j's u_j = columns [j r, (j+1) r)
//             y_j += s * u_j B_j^T             per member
//   backward: dB_j += s * dy_j^T u_j, du_j = s * dy_j B_j   per member, du_j into columns of du [T, n*r]
//             [dA_1; ...; dA_n] += du^T xd     [n*r, in]
//             dx += du [A_1; ...; A_n]         [T, in]
// 2 + n GEMMs forward and 2 + 2n backward instead of 2n and 4n. With dropout each member draws its own mask (PEFT
// has one dropout module per Linear; ours is a function of (member seed, index)), so there is no one xd to share:
// the forward's A projections are then one Ops::lora_a_dropout (u_j = dropout_j(x) A_j^T, every member's mask
// applied where x is read), the backward's one Ops::lora_da_dropout (dA_j += du_j^T dropout_j(x), the same masks
// rebuilt from the seeds) and one Ops::lora_dx_dropout (dx += sum_j mask_j (du_j A_j) / (1 - p)).
// QSFT_LORA_FUSED_DROPOUT=0 runs the members one by one both ways instead (the unstacked path: xd by dropout into
// the scratch for u and dA, dx by lora_dx_dropout of the member alone).
#pragma once
#include <array>

#include "engine/model/lora.h"
#include "engine/ops.h"

namespace qsft {

struct LoraBranch {
  Tensor A, B;    // parameters [r, in], [out, r] in the compute dtype (views of the flat buffer's compute copy)
  Tensor dA, dB;  // F32 gradients, same shapes (accumulated)
  float scaling = 1.0f;
  float dropout = 0.0f;  // probability; 0 = identity
  uint64_t seed = 0;     // dropout mask seed for this module in this micro-batch
};

// The members of one group of a layer, A's stacked: A = [m[0].A; ...; m[n-1].A] [n*r, in] (the same memory).
struct LoraStack {
  int n = 0;  // 0: none of the group is adapted
  std::array<LoraBranch, kMaxLoraGroupSize> m;
  Tensor A, dA;  // [n*r, in] compute dtype, F32
};

// x [T, in], u [T, n*r] (saved for backward), y[j]: member j's output [T, out_j] (may be a column slice), added to
// (accumulate) or written (then the caller's base GEMM adds onto it: beta 1), xd_scratch [T, >= in]
void lora_stack_forward(Ops& ops, const LoraStack& s, const Tensor& x, const Tensor& u, const Tensor* y,
                        Tensor& xd_scratch, bool accumulate = true);
// dy[j]: member j's output gradient, dx [T, in] accumulated (accumulate_dx) or written; du_scratch [T, >= n*r]
void lora_stack_backward(Ops& ops, const LoraStack& s, const Tensor& x, const Tensor& u, const Tensor* dy, Tensor& dx,
                         Tensor& du_scratch, Tensor& xd_scratch, bool accumulate_dx = true);

// One module (the unstacked path). x [T, in], u [T, r] (saved for backward), y: output rows [T, out] (may be a
// column slice) added to or written, xd_scratch [T, >= in]
void lora_forward(Ops& ops, const LoraBranch& l, const Tensor& x, Tensor& u, const Tensor& y, Tensor& xd_scratch,
                  bool accumulate = true);
// dy [T, out] (may be a column slice), dx [T, in] accumulated or written; du_scratch [T, r]
void lora_backward(Ops& ops, const LoraBranch& l, const Tensor& x, const Tensor& u, const Tensor& dy, Tensor& dx,
                   Tensor& du_scratch, Tensor& xd_scratch, bool accumulate_dx = true);

}  // namespace qsft
