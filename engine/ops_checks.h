// The argument checks the Ops backends share (engine/ops_cpu.cpp, engine/ops_cuda.cpp): dtypes, shapes and
// placement of every tensor an op takes. A failed check is a caller's bug: QSFT_CHECK throws std::logic_error with
// a message naming the argument, what it is and what was expected. The dtype of activations is a parameter: the
// CPU backend computes in F32, the CUDA backend in F32 or BF16.
#pragma once
#include <cstdint>
#include <string>

#include "engine/base/error.h"
#include "engine/ops.h"
#include "kernels/attention.h"

namespace qsft {

// M x N = op(A) [M, K] * op(B) [K, N].
struct GemmSizes {
  int64_t M = 0, N = 0, K = 0;
};

// The checks of one backend: every tensor must be on its device.
class OpsChecks {
 public:
  explicit OpsChecks(Device device) : device_(device) {}

  // On this device, with memory unless empty.
  void placed(const Tensor& t, const char* name) const {
    QSFT_CHECK(t.device == device_, std::string(name) + " is not a " + device_name() + " tensor");
    QSFT_CHECK(t.data || t.numel() == 0, std::string(name) + " has no memory");
  }

  void dtype(const Tensor& t, DType dtype, const char* name) const {
    placed(t, name);
    QSFT_CHECK(t.dtype == dtype, std::string(name) + " is " + dtype_name(t.dtype) + ", expected " + dtype_name(dtype));
  }

  // An activation or frozen weight: F32 or BF16.
  void floating(const Tensor& t, const char* name) const {
    placed(t, name);
    QSFT_CHECK(t.dtype == DType::F32 || t.dtype == DType::BF16,
               std::string(name) + " is " + dtype_name(t.dtype) + ", expected F32 or BF16");
  }

  // n elements of dtype (any shape).
  void vector(const Tensor& t, DType dtype, int64_t n, const char* name) const {
    this->dtype(t, dtype, name);
    QSFT_CHECK(t.numel() == n,
               std::string(name) + " is " + t.shape_str() + ", expected " + std::to_string(n) + " elements");
  }

  // [rows, cols] or a shape flattening to it with cols as its last dimension.
  void matrix(const Tensor& t, DType dtype, int64_t rows, int64_t cols, const char* name) const {
    vector(t, dtype, rows * cols, name);
    QSFT_CHECK(t.ndim >= 1 && t.dim(-1) == cols,
               std::string(name) + " is " + t.shape_str() + ", expected last dimension " + std::to_string(cols));
  }

  // [T, heads, D] exactly.
  void heads(const Tensor& t, DType dtype, int64_t T, int64_t heads, int64_t D, const char* name) const {
    this->dtype(t, dtype, name);
    QSFT_CHECK(t.ndim == 3 && t.dim(0) == T && t.dim(1) == heads && t.dim(2) == D,
               std::string(name) + " is " + t.shape_str() + ", expected [" + std::to_string(T) + ", " +
                   std::to_string(heads) + ", " + std::to_string(D) + "]");
  }

  // positions I32 [T], cu_seqlens I32 [S+1]. Host values are checked too (non-decreasing from 0 to T); device
  // values stay on the device, where the kernels trust them.
  void layout(const SeqLayout& seq, int64_t T) const {
    vector(seq.positions, DType::I32, T, "positions");
    vector(seq.cu_seqlens, DType::I32, int64_t(seq.num_seqs) + 1, "cu_seqlens");
    if (device_ == Device::CPU) {
      const int32_t* cu = seq.cu_seqlens.i32();
      QSFT_CHECK(cu[0] == 0 && cu[seq.num_seqs] == T, "cu_seqlens must run from 0 to T = " + std::to_string(T));
      for (int s = 0; s < seq.num_seqs; ++s) QSFT_CHECK(cu[s] <= cu[s + 1], "cu_seqlens must not decrease");
    } else {
      QSFT_CHECK(seq.num_seqs >= 1 || T == 0, "a layout with tokens needs at least one sequence");
    }
  }

  // A matrix view within its rows (the backend checks its dtype).
  static void view(const Mat& m, const char* name) {
    QSFT_CHECK(m.ld >= m.cols && (m.data || m.rows * m.cols == 0), std::string(name) + ": bad view");
  }

  // C = op(A) op(B) (+ bias [N] of C's dtype): the inner dimensions agree and C is [M, N].
  GemmSizes gemm(const Mat& A, bool transA, const Mat& B, bool transB, const Mat& C, const Tensor* bias) const {
    const int64_t M = transA ? A.cols : A.rows, K = transA ? A.rows : A.cols;
    const int64_t N = transB ? B.rows : B.cols, K_b = transB ? B.cols : B.rows;
    QSFT_CHECK(K == K_b && C.rows == M && C.cols == N,
               "gemm shapes: op(A) [" + std::to_string(M) + ", " + std::to_string(K) + "], op(B) [" +
                   std::to_string(K_b) + ", " + std::to_string(N) + "], C [" + std::to_string(C.rows) + ", " +
                   std::to_string(C.cols) + "]");
    if (bias) vector(*bias, C.dtype, N, "gemm bias");
    return {M, N, K};
  }

  // x, y (or dy) [T, H] and w [H] of dtype, rstd F32 [T].
  void rmsnorm(const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& rstd, int64_t T, int64_t H,
               DType dtype) const {
    vector(w, dtype, H, "rmsnorm w");
    matrix(x, dtype, T, H, "rmsnorm x");
    matrix(y, dtype, T, H, "rmsnorm y/dy");
    vector(rstd, DType::F32, T, "rmsnorm rstd");
  }

  // x [T, n, D] with D even (RoPE turns pairs), and its layout (the backend checks x's dtype).
  void rope(const Tensor& x, const SeqLayout& seq) const {
    QSFT_CHECK(x.ndim == 3 && x.dim(2) % 2 == 0, "rope x is " + x.shape_str() + ", expected [T, n, D] with D even");
    layout(seq, x.dim(0));
  }

  // q [T, n, D], k and v [T, nkv, D] of dtype with n a multiple of nkv, and their layout; the sizes.
  cpu::AttentionDims attention(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& seq,
                               DType dtype) const {
    QSFT_CHECK(q.ndim == 3 && k.ndim == 3, "attention q, k must be [T, heads, D]");
    const cpu::AttentionDims d{q.dim(0), q.dim(1), k.dim(1), q.dim(2)};
    QSFT_CHECK(d.nkv > 0 && d.n % d.nkv == 0, "query heads must be a multiple of kv heads");
    heads(q, dtype, d.T, d.n, d.D, "attention q");
    heads(k, dtype, d.T, d.nkv, d.D, "attention k");
    heads(v, dtype, d.T, d.nkv, d.D, "attention v");
    layout(seq, d.T);
    return d;
  }

  // attention_fwd's outputs: out [T, n, D] of dtype, lse F32 [n, T].
  void attention_outputs(const Tensor& out, const Tensor& lse, const cpu::AttentionDims& d, DType dtype) const {
    heads(out, dtype, d.T, d.n, d.D, "attention out");
    matrix(lse, DType::F32, d.n, d.T, "attention lse");
  }

  // attention_bwd's other tensors: dout and dq like q, dk and dv like k, out and lse as attention_fwd wrote them.
  void attention_grads(const Tensor& dout, const Tensor& out, const Tensor& lse, const Tensor& dq, const Tensor& dk,
                       const Tensor& dv, const cpu::AttentionDims& d, DType dtype) const {
    heads(dout, dtype, d.T, d.n, d.D, "attention dout");
    attention_outputs(out, lse, d, dtype);
    heads(dq, dtype, d.T, d.n, d.D, "attention dq");
    heads(dk, dtype, d.T, d.nkv, d.D, "attention dk");
    heads(dv, dtype, d.T, d.nkv, d.D, "attention dv");
  }

  // W [V, H] and h [T, H] of dtype, targets I32 [T], loss_sum F32 [1], correct I32 [1], dh like h when asked for;
  // whether dh is asked for (the backward).
  bool lm_head_ce(const Tensor& h, const Tensor& W, const Tensor& targets, const Tensor& loss_sum,
                  const Tensor& correct, const Tensor* dh, DType dtype) const {
    const int64_t V = W.dim(0), H = W.dim(-1), T = targets.numel();
    matrix(W, dtype, V, H, "lm_head W");
    matrix(h, dtype, T, H, "lm_head h");
    vector(targets, DType::I32, T, "targets");
    vector(loss_sum, DType::F32, 1, "loss_sum");
    vector(correct, DType::I32, 1, "correct");
    const bool backward = dh && !dh->empty();
    if (backward) matrix(*dh, dtype, T, H, "lm_head dh");
    return backward;
  }

  // y like x, p in [0, 1) (the backend checks x's dtype).
  void dropout(const Tensor& x, float p, const Tensor& y) const {
    vector(y, x.dtype, x.numel(), "dropout y");
    QSFT_CHECK(p >= 0.0f && p < 1.0f, "dropout p must be in [0, 1), got " + std::to_string(p));
  }

  // p, g, m, v F32 with p's element count; the step counts from 1.
  void adamw(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, int64_t step) const {
    const int64_t n = p.numel();
    vector(p, DType::F32, n, "adamw p");
    vector(g, DType::F32, n, "adamw g");
    vector(m, DType::F32, n, "adamw m");
    vector(v, DType::F32, n, "adamw v");
    QSFT_CHECK(step >= 1, "adamw step counts from 1");
  }

 private:
  const char* device_name() const { return device_ == Device::CPU ? "CPU" : "CUDA"; }

  Device device_;
};

}  // namespace qsft
