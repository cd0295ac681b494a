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
  Tensor qkv;                             // [T, (n + 2 nkv) D]: q | k | v columns (q, k after RoPE; on Qwen3 the
                                          // head norms' inputs: the normalized q, k are recomputed, BackwardScratch)
  Tensor attn, lse;                       // [T, n, D], [n, T]
  Tensor h_mid;                           // residual after attention [T, H]
  Tensor xn2, rstd2;                      // rmsnorm2 output [T, H], [T]
  Tensor gate_up, act;                    // [T, 2I], [T, I]
  std::array<Tensor, kNumLoraGroups> u;   // LoRA x [A_1; ...]^T per group of n adapted modules [T, n*r]

  Tensor lse_rows(int64_t T) const { return Tensor(lse.data, DType::F32, {lse.dim(0), T}, lse.device); }  // [n, T]
};

// Backward scratch, shared by all layers. dh and dx are live throughout; the rest lives in one region reused phase
// by phase (run_state.cpp): LoRA's xd and du at its start (every phase's LoRA backward), then the MLP phase's d_act
// or, over the same bytes, the attention phase's d_attn, d_qkv and Qwen3's qkn, rstd_q, rstd_k; before either, the
// loss phase's RunState::xf and the rest of the region as the loss's scratch (`shared`, lent to lm_head_ce). d gate_up
// is computed in place of the saved gate_up. The forward uses d_qkv's memory for packed q, k, v copies (an attention
// hook: generation) and Qwen3's qkn, rstd_q, rstd_k, so an inference-only state has those too.
struct BackwardScratch {
  Tensor dh, dx;        // [T, H]: gradient of the residual stream; of a norm's input
  Tensor xd, du;        // LoRA dropout(x) [T, max(H, I, n*D)]; [T, n*r], n: the largest group (none: full FT)
  Tensor d_act;         // MLP phase [T, I]
  Tensor d_attn;        // attention phase [T, n*D]
  Tensor d_qkv;         // attention phase [T, (n + 2 nkv) D]: dq | dk | dv columns, the input of one dgrad GEMM
  // Qwen3: q, k after the head norms (and RoPE) in qkv's layout [T, (n + 2 nkv) D] (v's columns unused), so that
  // attention's dq, dk in d_qkv have their row stride; written by the forward, recomputed by the backward. The norms'
  // statistics F32 [T*n], [T*nkv].
  Tensor qkn, rstd_q, rstd_k;
  Tensor shared;        // U8: the region after xf, free while the loss is computed
};

// Bytes of a run state by role (their sum is what its arena takes, with the batch's few bytes).
struct RunStateBytes {
  size_t residuals = 0;  // the L + 1 residual streams, the final norm's statistics, the loss
  size_t saved = 0;      // the layers' saved activations (LayerActs)
  size_t scratch = 0;    // the backward scratch (dh, dx and the shared region, with xf)
};

struct RunState {
  std::vector<Tensor> resid;    // L + 1 residual streams [T, H]: input of each layer, and the last output
  std::vector<LayerActs> acts;  // [shared by the recomputed layers (R > 0)] + one per kept layer
  Tensor xf, rstd_f;            // final norm output [T, H] (in the backward scratch's region), [T]
  Tensor loss_sum, correct;     // F32 [1], I32 [1]
  BackwardScratch g;

  int recomputed = 0;           // R: layers [0, R) are recomputed in the backward
  RunStateBytes bytes;

  // loss_scratch: the bytes lm_head_ce needs on the backend (0 when it brings its own: cpu); the shared region is
  // at least that large. backward = false (inference): resid[l] alternates between two buffers (layer l reads
  // resid[l] and writes resid[l + 1], the other one), and there is no backward scratch (xf only).
  void carve(Arena& a, const Qwen2Config& c, const LoraConfig& lora, int64_t max_tokens, int recomputed_layers, DType w,
             bool backward = true, size_t loss_scratch = 0);
  LayerActs& layer(int l) { return l < recomputed ? acts[0] : acts[size_t(l - recomputed + (recomputed > 0))]; }
};

}  // namespace qsft
