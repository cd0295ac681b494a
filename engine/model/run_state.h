// The run state of a Qwen2 decoder: every activation a step writes, sized for the largest micro-batch and
// carved from one arena before step one (views of the first T rows are used). With recompute (activation
// checkpointing) of the first R layers, those keep only their residual streams and share one LayerActs; the
// other L - R keep their own.
#pragma once
#include <array>
#include <vector>

#include "engine/arena.h"
#include "engine/io/model_config.h"
#include "engine/model/lora.h"

namespace qsft {

// What the backward of one layer needs from its forward.
struct LayerActs {
  Tensor xn1, rstd1;                      // rmsnorm1 output [T, H], [T]
  Tensor qkv;                             // [T, (n + 2 nkv) D]: q | k | v columns (q, k after RoPE but on Qwen3)
  Tensor q, k;                            // Qwen3: after head norm and RoPE [T, n, D], [T, nkv, D]; else empty
  Tensor rstd_q, rstd_k;                  // Qwen3: the head norms' statistics F32 [T*n], [T*nkv]
  Tensor attn, lse;                       // [T, n, D], [n, T]
  Tensor h_mid;                           // residual after attention [T, H]
  Tensor xn2, rstd2;                      // rmsnorm2 output [T, H], [T]
  Tensor gate_up, act;                    // [T, 2I], [T, I]
  std::array<Tensor, kNumLoraGroups> u;   // LoRA x [A_1; ...]^T per group of n adapted modules [T, n*r]

  Tensor lse_rows(int64_t T) const { return Tensor(lse.data, DType::F32, {lse.dim(0), T}, lse.device); }  // [n, T]
};

// Backward scratch, shared by all layers. d_qkv (packed q, k, v copies for an attention hook) and Qwen3's q_pre,
// k_pre serve the forward too, so an inference-only state has them.
struct BackwardScratch {
  Tensor dh, dx;            // [T, H]: gradient of the residual stream; of a norm's input
  Tensor d_attn;            // [T, n*D]
  Tensor d_qkv;             // [T, (n + 2 nkv) D]: dq | dk | dv columns, the input of one dgrad GEMM
  Tensor dq, dk;            // Qwen3: d of the packed q, k [T, n*D], [T, nkv*D]
  Tensor q_pre, k_pre;      // Qwen3: the head norms' inputs (qkv's q, k columns) packed [T, n*D], [T, nkv*D]
  Tensor dk_pre;            // Qwen3: d k before its head norm [T, nkv*D] (d q before its norm reuses d_attn)
  Tensor d_gate_up, d_act;  // [T, 2I], [T, I]
  Tensor du;                // LoRA [T, n*r], n: the largest group
  Tensor xd;                // LoRA dropout(x) [T, max(H, I, n*D)]
};

struct RunState {
  std::vector<Tensor> resid;    // L + 1 residual streams [T, H]: input of each layer, and the last output
  std::vector<LayerActs> acts;  // [shared by the recomputed layers (R > 0)] + one per kept layer
  Tensor xf, rstd_f;            // final norm output [T, H], [T]
  Tensor loss_sum, correct;     // F32 [1], I32 [1]
  BackwardScratch g;

  int recomputed = 0;           // R: layers [0, R) are recomputed in the backward

  // backward = false (inference): resid[l] alternates between two buffers (layer l reads resid[l] and writes
  // resid[l + 1], the other one), and there is no backward scratch.
  void carve(Arena& a, const Qwen2Config& c, const LoraConfig& lora, int64_t max_tokens, int recomputed_layers,
             DType w, bool backward = true);
  LayerActs& layer(int l) { return l < recomputed ? acts[0] : acts[size_t(l - recomputed + (recomputed > 0))]; }
};

}  // namespace qsft
