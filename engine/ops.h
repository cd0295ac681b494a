// Ops: the seam between the model and a backend. The model (engine/model/) is written once against these calls;
// the cpu backend (fp32, the reference) and the cuda backend implement them. Shapes use T = tokens of the packed
// micro-batch, H = hidden, n = heads, D = head_dim, I = intermediate, V = vocab, S = sequences in the batch.
//
// Conventions: row-major contiguous tensors; outputs are overwritten unless the name says accumulate ("+=").
// A backend owns its memory: alloc() hands out device memory (the model carves it into arenas once, before step
// one: no allocation inside the step loop).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "engine/base/tensor.h"

namespace qsft {

// A row-major matrix view with a leading dimension (row stride in elements), for GEMMs over slices.
struct Mat {
  void* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0, ld = 0;
  static Mat of(const Tensor& t) {  // [rows, ...]: the first dimension is the rows, the rest the columns
    int64_t rows = t.dim(0), cols = rows ? t.numel() / rows : 0;
    return {t.data, t.dtype, rows, cols, cols};
  }
  Mat cols_slice(int64_t c0, int64_t c1) const {  // columns [c0, c1) of the same rows
    return {static_cast<char*>(data) + size_t(c0) * dtype_size(dtype), dtype, rows, c1 - c0, ld};
  }
};

// The packed micro-batch layout the attention and RoPE need. Device tensors on the backend's device.
struct SeqLayout {
  Tensor positions;   // I32 [T]: position of each token within its own sequence (restarts at 0)
  Tensor cu_seqlens;  // I32 [S+1]: token offsets of the sequences; cu_seqlens[S] == T
  int num_seqs = 0;
  int max_seqlen = 0;
};

class Ops {
 public:
  virtual ~Ops() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;

  // ---- memory ----
  virtual void* alloc_bytes(size_t bytes) = 0;  // zero-initialised
  virtual void free_bytes(void* p) = 0;
  virtual void copy_to_device(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void zero(Tensor& t) = 0;
  // dst = src (same dtype and element count, both on this device).
  virtual void copy(Tensor& dst, const Tensor& src) {
    zero(dst);
    add_inplace(dst, src);
  }
  virtual void synchronize() {}
  // Bytes of device memory free for our arenas (0 = unknown).
  virtual size_t memory_available() const { return 0; }

  // ---- GEMM ----
  // C = alpha * op(A) @ op(B) + beta * C (+ bias[N] broadcast over rows when bias is given).
  // op(A) is [M, K] (A is [K, M] when transA), op(B) is [K, N] (B is [N, K] when transB); C is [M, N].
  // Linear layer y = x W^T: gemm(x, false, W, true, y). fp32 accumulation on every backend.
  virtual void gemm(const Mat& A, bool transA, const Mat& B, bool transB, const Mat& C, float alpha, float beta,
                    const Tensor* bias = nullptr) = 0;

  // ---- embedding ----
  // out[t, :] = table[ids[t], :].   ids I32 [T], table [V, H], out [T, H]
  virtual void embedding_fwd(const Tensor& ids, const Tensor& table, Tensor& out) = 0;
  // NEFTune: x += U(-scale, scale) elementwise, scale = alpha / sqrt(L * H); the noise is a function of (seed, index).
  virtual void neftune_noise(Tensor& x, float scale, uint64_t seed) = 0;

  // ---- RMSNorm (Qwen2: y = x * rsqrt(mean(x^2) + eps) * w, statistics in fp32) ----
  // x [T, H], w [H], y [T, H], rstd F32 [T] (saved for backward)
  virtual void rmsnorm_fwd(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd) = 0;
  // Fused residual add: h += delta, then y = rmsnorm(h). h, delta [T, H]
  virtual void add_rmsnorm_fwd(Tensor& h, const Tensor& delta, const Tensor& w, float eps, Tensor& y,
                               Tensor& rstd) = 0;
  // dx += d rmsnorm(x)/dx ^T dy  (accumulates: dx is the residual-stream gradient). dy, x, dx [T, H]
  virtual void rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx) = 0;

  // ---- RoPE (rotate_half; inv_freq[i] = theta^(-2i/D); cos/sin of positions[t] * inv_freq) ----
  // x [T, n, D] in place; the backward applies the inverse rotation to the gradient, also in place.
  virtual void rope_fwd(Tensor& x, const SeqLayout& seq, float theta) = 0;
  virtual void rope_bwd(Tensor& dx, const SeqLayout& seq, float theta) = 0;

  // ---- attention: causal within each packed sequence, GQA (q head h reads kv head h / (n / nkv)) ----
  // q [T, n, D], k, v [T, nkv, D], out [T, n, D], lse F32 [n, T] (log-sum-exp of the scaled scores, saved).
  virtual void attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& seq, Tensor& out,
                             Tensor& lse) = 0;
  // dq [T, n, D], dk, dv [T, nkv, D] are overwritten.
  virtual void attention_bwd(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                             const Tensor& out, const Tensor& lse, const SeqLayout& seq, Tensor& dq, Tensor& dk,
                             Tensor& dv) = 0;

  // ---- SwiGLU on a fused gate/up output: out = silu(gate) * up ----
  // gate_up [T, 2I] (gate = columns [0, I), up = [I, 2I)), out [T, I]; dgate_up [T, 2I] overwritten.
  virtual void swiglu_fwd(const Tensor& gate_up, Tensor& out) = 0;
  virtual void swiglu_bwd(const Tensor& dout, const Tensor& gate_up, Tensor& dgate_up) = 0;

  // ---- LM head + cross-entropy, chunked over tokens: never [T, V] logits at once ----
  // logits = h @ W^T (W [V, H]); for each t with targets[t] >= 0 (-100 = not trained):
  //   loss_t = logsumexp(logits_t) - logits_t[target];   loss_sum[0] += sum_t loss_t (F32 [1])
  //   correct[0] += (argmax logits_t == target)          (I32 [1], for token accuracy)
  //   dh_t = grad_scale * (softmax(logits_t) - onehot(target)) @ W   (0 for untrained t); dh [T, H] overwritten.
  // dh may be empty (eval: no backward).
  virtual void lm_head_ce(const Tensor& h, const Tensor& W, const Tensor& targets, float grad_scale,
                          Tensor& loss_sum, Tensor& correct, Tensor* dh) = 0;

  // ---- elementwise and reductions ----
  virtual void add_inplace(Tensor& y, const Tensor& x) = 0;  // y += x
  virtual void scale_inplace(Tensor& y, float s) = 0;        // y *= s
  // Dropout: y = x * mask / (1 - p), mask ~ Bernoulli(1 - p) as a function of (seed, index). p == 0 copies.
  virtual void dropout(const Tensor& x, float p, uint64_t seed, Tensor& y) = 0;
  // sum of squares of an F32 tensor, reduced in a fixed order (deterministic), returned to the host.
  virtual double sum_squares(const Tensor& x) = 0;

  // ---- optimizer: torch.optim.AdamW on F32 parameters (decoupled weight decay, bias correction) ----
  // p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
  // p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).   step t counts from 1.
  struct AdamW {  // doubles, as torch's hyper-parameters are Python floats
    double lr, beta1, beta2, eps, weight_decay;
    int64_t step;
  };
  virtual void adamw_step(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, const AdamW& h) = 0;
};

// Device memory the cuda backend takes beyond the model's arenas (its cuBLASLt workspace).
constexpr size_t kCudaScratchBytes = size_t(32) << 20;

// The fp32 reference backend (OpenMP). Always available.
std::unique_ptr<Ops> make_cpu_ops();
// The CUDA backend; throws InputError when there is no usable GPU or it was not built.
std::unique_ptr<Ops> make_cuda_ops();
bool cuda_available();

}  // namespace qsft
