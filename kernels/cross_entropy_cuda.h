// CUDA LM head + cross-entropy (kernels/cross_entropy.h is the reference), chunked over the trained tokens:
//   idx = tokens with target >= 0 (in token order)            one block, a scan
//   per chunk of C of them:  hc = h[idx]                       row gather          [C, H]
//                            logits = hc @ W^T                 cuBLASLt, dtype dt  [C, V]
//                            per row (softmax_ce_rows): one read for the online max, first argmax and
//                            sum exp(l - max) -> lse, loss, hit; one read + write for
//                            logits <- grad_scale (softmax - onehot)  (in place, 16-byte vectors)
//                            dhc = dlogits @ W; dh[idx] = dhc  cuBLASLt + row scatter
//                            dW += dlogits^T hc                cuBLASLt, F32 accumulation (full fine-tuning)
//   loss_sum += sum of row losses, correct += hits             one block, fixed order (deterministic)
// Only [C, V] logits exist at a time: C = lm_head_ce_chunk(V) keeps them near 256 MiB (832 tokens at V = 152064 in
// bf16). With dt = BF16 the logits are bf16 as transformers' lm_head output is; softmax statistics are fp32.
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/base/tensor.h"
#include "kernels/cross_entropy_scratch.h"
#include "kernels/gemm_cuda.h"

namespace qsft::cuda {

// The per-row pass over a chunk of logits (LmHeadCe::row_pass; bench/gpu_ops_bench times it against its
// kernels/dev/cross_entropy variants): for row r with target y = targets[idx[r]]: row_loss[r] = lse - l_y,
// row_correct[r] = (first argmax == y), and when want_grad the row becomes grad_scale (softmax - onehot(y)).
struct SoftmaxCeRows {
  DType dt = DType::BF16;
  void* logits = nullptr;  // [rows, V]
  int64_t rows = 0, V = 0;
  const int32_t* targets = nullptr;  // [T]
  const int32_t* idx = nullptr;      // [rows]: the token of each row
  float grad_scale = 0.0f;
  bool want_grad = false;
  float* row_loss = nullptr;      // [rows]
  int32_t* row_correct = nullptr;  // [rows]
};
void softmax_ce_rows(const SoftmaxCeRows& a, void* stream);

struct LmHeadCe {
  DType dt = DType::BF16;            // h, W, dh (F32 or BF16)
  const void* h = nullptr;           // [T, H]
  const void* W = nullptr;           // [V, H]
  const int32_t* targets = nullptr;  // [T], -100 (any negative) = not trained; each < V (the caller checks)
  int64_t T = 0, H = 0, V = 0;
  float grad_scale = 0.0f;
  float* loss_sum = nullptr;   // [1], += sum of losses
  int32_t* correct = nullptr;  // [1], += argmax hits
  void* dh = nullptr;          // [T, H] overwritten, or nullptr (eval)
  float* dW = nullptr;         // F32 [V, H] +=, or nullptr (W frozen); needs dh
  void (*row_pass)(const SoftmaxCeRows&, void* stream) = softmax_ce_rows;  // a bench swaps variants in
};

size_t lm_head_ce_scratch_bytes(const LmHeadCe& a);
// Synchronises once (the number of trained tokens comes to the host to size the chunks).
void lm_head_ce(const LmHeadCe& a, GemmRunner& gemm, void* scratch, void* stream);

}  // namespace qsft::cuda
