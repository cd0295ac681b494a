// LM head fused with cross-entropy, chunked over tokens: only a [chunk, V] block of logits exists at a time.
//   logits_t = h_t @ W^T,  loss_t = logsumexp(logits_t) - logits_t[target_t]  (logsumexp over all V)
//   dh_t = grad_scale * (softmax(logits_t) - onehot(target_t)) @ W
//   dW  += sum_t grad_scale * (softmax(logits_t) - onehot(target_t))^T h_t   (full fine-tuning only)
// Tokens with target < 0 (-100) are not trained: no loss, no accuracy, dh_t = 0. Only trained tokens are computed.
#pragma once
#include <cstdint>

namespace qsft::cpu {

constexpr int64_t kCrossEntropyChunk = 64;  // tokens per logits block

// h [T, H], W [V, H], targets [T] (each < V: the caller checks). loss_sum[0] += sum of loss_t;
// correct[0] += count of argmax(logits_t) == target_t (first maximum, as torch.argmax). dh [T, H] overwritten,
// or nullptr for no backward (eval). dW [V, H] accumulates (+=, chunk by chunk in token order), or nullptr (W frozen);
// it needs dh.
void lm_head_ce(const float* h, const float* W, const int32_t* targets, int64_t T, int64_t H, int64_t V,
                float grad_scale, float* loss_sum, int32_t* correct, float* dh, float* dW = nullptr);

}  // namespace qsft::cpu
