// CpuOps: the fp32 reference backend. Every op checks dtypes and shapes, then calls its qsft::cpu function
// (kernels/NAME.h). Memory is plain host memory, 64-byte aligned and zeroed.
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>

#include "engine/ops.h"
#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/reduce.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace qsft {
namespace {

constexpr size_t kAlignment = 64;

void expect_dtype(const Tensor& t, DType dtype, const char* name) {
  QSFT_CHECK(t.dtype == dtype, std::string(name) + " is " + dtype_name(t.dtype) + ", expected " + dtype_name(dtype));
  QSFT_CHECK(t.device == Device::CPU, std::string(name) + " is not a CPU tensor");
  QSFT_CHECK(t.data || t.numel() == 0, std::string(name) + " has no memory");
}

// t holds n elements of dtype (any shape).
void expect_vector(const Tensor& t, DType dtype, int64_t n, const char* name) {
  expect_dtype(t, dtype, name);
  QSFT_CHECK(t.numel() == n,
             std::string(name) + " is " + t.shape_str() + ", expected " + std::to_string(n) + " elements");
}

// t is [rows, cols] or a shape flattening to it with cols as its last dimension.
void expect_matrix(const Tensor& t, DType dtype, int64_t rows, int64_t cols, const char* name) {
  expect_vector(t, dtype, rows * cols, name);
  QSFT_CHECK(t.ndim >= 1 && t.dim(-1) == cols,
             std::string(name) + " is " + t.shape_str() + ", expected last dimension " + std::to_string(cols));
}

// t is [T, heads, D] exactly.
void expect_heads(const Tensor& t, int64_t T, int64_t heads, int64_t D, const char* name) {
  expect_dtype(t, DType::F32, name);
  QSFT_CHECK(t.ndim == 3 && t.dim(0) == T && t.dim(1) == heads && t.dim(2) == D,
             std::string(name) + " is " + t.shape_str() + ", expected [" + std::to_string(T) + ", " +
                 std::to_string(heads) + ", " + std::to_string(D) + "]");
}

// positions I32 [T]; cu_seqlens I32 [S+1], non-decreasing from 0 to T.
void expect_layout(const SeqLayout& seq, int64_t T) {
  expect_vector(seq.positions, DType::I32, T, "positions");
  expect_vector(seq.cu_seqlens, DType::I32, int64_t(seq.num_seqs) + 1, "cu_seqlens");
  const int32_t* cu = seq.cu_seqlens.i32();
  QSFT_CHECK(cu[0] == 0 && cu[seq.num_seqs] == T, "cu_seqlens must run from 0 to T = " + std::to_string(T));
  for (int s = 0; s < seq.num_seqs; ++s) QSFT_CHECK(cu[s] <= cu[s + 1], "cu_seqlens must not decrease");
}

void expect_mat(const Mat& m, const char* name) {
  QSFT_CHECK(m.dtype == DType::F32, std::string(name) + " is " + dtype_name(m.dtype) + ", expected F32");
  QSFT_CHECK(m.ld >= m.cols && (m.data || m.rows * m.cols == 0), std::string(name) + ": bad view");
}

class CpuOps final : public Ops {
 public:
  Device device() const override { return Device::CPU; }
  std::string name() const override { return "cpu"; }

  void* alloc_bytes(size_t bytes) override {
    const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment + kAlignment * (bytes == 0);
    void* p = std::aligned_alloc(kAlignment, rounded);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, rounded);
    return p;
  }
  void free_bytes(void* p) override { std::free(p); }
  size_t memory_available() const override {  // MemAvailable of /proc/meminfo (Linux); 0 = unknown
    std::ifstream in("/proc/meminfo");
    for (std::string key; in >> key;) {
      size_t kib = 0;
      in >> kib;
      if (key == "MemAvailable:") return kib * 1024;
      in.ignore(1 << 10, '\n');
    }
    return 0;
  }
  void copy_to_device(void* dst, const void* host_src, size_t bytes) override { std::memcpy(dst, host_src, bytes); }
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override { std::memcpy(host_dst, src, bytes); }
  void zero(Tensor& t) override {
    if (t.data) std::memset(t.data, 0, t.nbytes());
  }
  void copy(Tensor& dst, const Tensor& src) override {
    expect_vector(dst, src.dtype, src.numel(), "copy dst");
    if (src.numel() > 0) std::memcpy(dst.data, src.data, src.nbytes());
  }

  void gemm(const Mat& A, bool transA, const Mat& B, bool transB, const Mat& C, float alpha, float beta,
            const Tensor* bias) override {
    expect_mat(A, "gemm A");
    expect_mat(B, "gemm B");
    expect_mat(C, "gemm C");
    const int64_t M = transA ? A.cols : A.rows, K = transA ? A.rows : A.cols;
    const int64_t N = transB ? B.rows : B.cols, K_b = transB ? B.cols : B.rows;
    QSFT_CHECK(K == K_b && C.rows == M && C.cols == N,
               "gemm shapes: op(A) [" + std::to_string(M) + ", " + std::to_string(K) + "], op(B) [" +
                   std::to_string(K_b) + ", " + std::to_string(N) + "], C [" + std::to_string(C.rows) + ", " +
                   std::to_string(C.cols) + "]");
    if (bias) expect_vector(*bias, DType::F32, N, "gemm bias");
    cpu::gemm(M, N, K, alpha, static_cast<const float*>(A.data), A.ld, transA, static_cast<const float*>(B.data), B.ld,
              transB, beta, static_cast<float*>(C.data), C.ld, bias ? bias->f32() : nullptr);
  }

  void embedding_fwd(const Tensor& ids, const Tensor& table, Tensor& out) override {
    const int64_t T = ids.numel(), V = table.dim(0), H = table.dim(-1);
    expect_vector(ids, DType::I32, T, "ids");
    expect_matrix(table, DType::F32, V, H, "embedding table");
    expect_matrix(out, DType::F32, T, H, "embedding out");
    for (int64_t t = 0; t < T; ++t)
      QSFT_CHECK(ids.i32()[t] >= 0 && ids.i32()[t] < V,
                 "token id " + std::to_string(ids.i32()[t]) + " outside the vocabulary [0, " + std::to_string(V) + ")");
    cpu::embedding_fwd(ids.i32(), table.f32(), T, H, out.f32());
  }
  void neftune_noise(Tensor& x, float scale, uint64_t seed) override {
    expect_dtype(x, DType::F32, "neftune x");
    cpu::neftune_noise(x.f32(), x.numel(), scale, seed);
  }

  void rmsnorm_fwd(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd) override {
    const int64_t H = w.numel(), T = x.numel() / H;
    expect_rmsnorm(x, w, y, rstd, T, H);
    cpu::rmsnorm_fwd(x.f32(), w.f32(), T, H, eps, y.f32(), rstd.f32());
  }
  void add_rmsnorm_fwd(Tensor& h, const Tensor& delta, const Tensor& w, float eps, Tensor& y, Tensor& rstd) override {
    const int64_t H = w.numel(), T = h.numel() / H;
    expect_rmsnorm(h, w, y, rstd, T, H);
    expect_matrix(delta, DType::F32, T, H, "rmsnorm delta");
    cpu::add_rmsnorm_fwd(h.f32(), delta.f32(), w.f32(), T, H, eps, y.f32(), rstd.f32());
  }
  void rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx) override {
    const int64_t H = w.numel(), T = x.numel() / H;
    expect_rmsnorm(x, w, dy, rstd, T, H);
    expect_matrix(dx, DType::F32, T, H, "rmsnorm dx");
    cpu::rmsnorm_bwd(dy.f32(), x.f32(), w.f32(), rstd.f32(), T, H, dx.f32());
  }

  void rope_fwd(Tensor& x, const SeqLayout& seq, float theta) override {
    expect_rope(x, seq);
    cpu::rope_fwd(x.f32(), seq.positions.i32(), x.dim(0), x.dim(1), x.dim(2), theta);
  }
  void rope_bwd(Tensor& dx, const SeqLayout& seq, float theta) override {
    expect_rope(dx, seq);
    cpu::rope_bwd(dx.f32(), seq.positions.i32(), dx.dim(0), dx.dim(1), dx.dim(2), theta);
  }

  void attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& seq, Tensor& out,
                     Tensor& lse) override {
    const cpu::AttentionDims d = expect_attention(q, k, v, seq);
    expect_heads(out, d.T, d.n, d.D, "attention out");
    expect_matrix(lse, DType::F32, d.n, d.T, "attention lse");
    cpu::attention_fwd(q.f32(), k.f32(), v.f32(), seq.cu_seqlens.i32(), seq.num_seqs, d, out.f32(), lse.f32());
  }
  void attention_bwd(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                     const Tensor& lse, const SeqLayout& seq, Tensor& dq, Tensor& dk, Tensor& dv) override {
    const cpu::AttentionDims d = expect_attention(q, k, v, seq);
    expect_heads(dout, d.T, d.n, d.D, "attention dout");
    expect_heads(out, d.T, d.n, d.D, "attention out");
    expect_matrix(lse, DType::F32, d.n, d.T, "attention lse");
    expect_heads(dq, d.T, d.n, d.D, "attention dq");
    expect_heads(dk, d.T, d.nkv, d.D, "attention dk");
    expect_heads(dv, d.T, d.nkv, d.D, "attention dv");
    cpu::attention_bwd(dout.f32(), q.f32(), k.f32(), v.f32(), out.f32(), lse.f32(), seq.cu_seqlens.i32(), seq.num_seqs,
                       d, dq.f32(), dk.f32(), dv.f32());
  }

  void swiglu_fwd(const Tensor& gate_up, Tensor& out) override {
    const int64_t I = out.dim(-1), T = out.numel() / I;
    expect_matrix(gate_up, DType::F32, T, 2 * I, "swiglu gate_up");
    expect_matrix(out, DType::F32, T, I, "swiglu out");
    cpu::swiglu_fwd(gate_up.f32(), T, I, out.f32());
  }
  void swiglu_bwd(const Tensor& dout, const Tensor& gate_up, Tensor& dgate_up) override {
    const int64_t I = dout.dim(-1), T = dout.numel() / I;
    expect_matrix(dout, DType::F32, T, I, "swiglu dout");
    expect_matrix(gate_up, DType::F32, T, 2 * I, "swiglu gate_up");
    expect_matrix(dgate_up, DType::F32, T, 2 * I, "swiglu dgate_up");
    cpu::swiglu_bwd(dout.f32(), gate_up.f32(), T, I, dgate_up.f32());
  }

  void lm_head_ce(const Tensor& h, const Tensor& W, const Tensor& targets, float grad_scale, Tensor& loss_sum,
                  Tensor& correct, Tensor* dh) override {
    const int64_t V = W.dim(0), H = W.dim(-1), T = targets.numel();
    expect_matrix(W, DType::F32, V, H, "lm_head W");
    expect_matrix(h, DType::F32, T, H, "lm_head h");
    expect_vector(targets, DType::I32, T, "targets");
    expect_vector(loss_sum, DType::F32, 1, "loss_sum");
    expect_vector(correct, DType::I32, 1, "correct");
    const bool backward = dh && !dh->empty();
    if (backward) expect_matrix(*dh, DType::F32, T, H, "lm_head dh");
    for (int64_t t = 0; t < T; ++t)
      QSFT_CHECK(targets.i32()[t] < V, "target " + std::to_string(targets.i32()[t]) + " outside the vocabulary [0, " +
                                           std::to_string(V) + ")");
    cpu::lm_head_ce(h.f32(), W.f32(), targets.i32(), T, H, V, grad_scale, loss_sum.f32(), correct.i32(),
                    backward ? dh->f32() : nullptr);
  }

  void add_inplace(Tensor& y, const Tensor& x) override {
    expect_dtype(y, DType::F32, "y");
    expect_vector(x, DType::F32, y.numel(), "x");
    cpu::add_inplace(y.f32(), x.f32(), y.numel());
  }
  void scale_inplace(Tensor& y, float s) override {
    expect_dtype(y, DType::F32, "y");
    cpu::scale_inplace(y.f32(), s, y.numel());
  }
  void dropout(const Tensor& x, float p, uint64_t seed, Tensor& y) override {
    expect_dtype(x, DType::F32, "dropout x");
    expect_vector(y, DType::F32, x.numel(), "dropout y");
    QSFT_CHECK(p >= 0.0f && p < 1.0f, "dropout p must be in [0, 1), got " + std::to_string(p));
    cpu::dropout(x.f32(), x.numel(), p, seed, y.f32());
  }
  double sum_squares(const Tensor& x) override {
    expect_dtype(x, DType::F32, "sum_squares x");
    return cpu::sum_squares(x.f32(), x.numel());
  }

  void adamw_step(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, const AdamW& h) override {
    const int64_t n = p.numel();
    expect_vector(p, DType::F32, n, "adamw p");
    expect_vector(g, DType::F32, n, "adamw g");
    expect_vector(m, DType::F32, n, "adamw m");
    expect_vector(v, DType::F32, n, "adamw v");
    QSFT_CHECK(h.step >= 1, "adamw step counts from 1");
    cpu::adamw_step(p.f32(), g.f32(), m.f32(), v.f32(), n, {h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.step});
  }

 private:
  static void expect_rmsnorm(const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& rstd, int64_t T,
                             int64_t H) {
    expect_vector(w, DType::F32, H, "rmsnorm w");
    expect_matrix(x, DType::F32, T, H, "rmsnorm x");
    expect_matrix(y, DType::F32, T, H, "rmsnorm y/dy");
    expect_vector(rstd, DType::F32, T, "rmsnorm rstd");
  }
  static void expect_rope(const Tensor& x, const SeqLayout& seq) {
    QSFT_CHECK(x.ndim == 3 && x.dim(2) % 2 == 0, "rope x is " + x.shape_str() + ", expected [T, n, D] with D even");
    expect_heads(x, x.dim(0), x.dim(1), x.dim(2), "rope x");
    expect_layout(seq, x.dim(0));
  }
  static cpu::AttentionDims expect_attention(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& seq) {
    QSFT_CHECK(q.ndim == 3 && k.ndim == 3, "attention q, k must be [T, heads, D]");
    const cpu::AttentionDims d{q.dim(0), q.dim(1), k.dim(1), q.dim(2)};
    QSFT_CHECK(d.nkv > 0 && d.n % d.nkv == 0, "query heads must be a multiple of kv heads");
    expect_heads(q, d.T, d.n, d.D, "attention q");
    expect_heads(k, d.T, d.nkv, d.D, "attention k");
    expect_heads(v, d.T, d.nkv, d.D, "attention v");
    expect_layout(seq, d.T);
    return d;
  }
};

}  // namespace

std::unique_ptr<Ops> make_cpu_ops() { return std::make_unique<CpuOps>(); }

}  // namespace qsft
