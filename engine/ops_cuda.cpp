// The CUDA backend: every op checks dtypes and shapes on the host, then launches its qsft::cuda kernel
// (kernels/NAME_cuda.h, kernels/NAME.cu) on the backend's one compute stream. Activations and frozen weights are
// BF16 (F32 also works for every op but attention), LoRA parameters/gradients and optimizer state F32; GEMMs run
// on cuBLASLt. Without the CUDA build only the fallback at the bottom exists. No CUDA header is seen here: the
// kernels' launchers are plain C++ declarations.
#include "engine/ops.h"

#if defined(QSFT_HAVE_CUDA)
#include <memory>
#include <string>

#include "kernels/adamw_cuda.h"
#include "kernels/attention_cuda.h"
#include "kernels/cross_entropy_cuda.h"
#include "kernels/elementwise_cuda.h"
#include "kernels/embedding_cuda.h"
#include "kernels/gemm_cuda.h"
#include "kernels/reduce_cuda.h"
#include "kernels/rmsnorm_cuda.h"
#include "kernels/rope_cuda.h"
#include "kernels/runtime_cuda.h"
#include "kernels/swiglu_cuda.h"
#endif

namespace qsft {

#if defined(QSFT_HAVE_CUDA)

namespace {

std::string name_of(const char* what) { return std::string(what); }

void expect_on_device(const Tensor& t, const char* name) {
  QSFT_CHECK(t.device == Device::CUDA, name_of(name) + " is not a CUDA tensor");
  QSFT_CHECK(t.data || t.numel() == 0, name_of(name) + " has no memory");
}

void expect_dtype(const Tensor& t, DType dtype, const char* name) {
  expect_on_device(t, name);
  QSFT_CHECK(t.dtype == dtype, name_of(name) + " is " + dtype_name(t.dtype) + ", expected " + dtype_name(dtype));
}

// An activation or frozen weight: F32 or BF16.
void expect_float(const Tensor& t, const char* name) {
  expect_on_device(t, name);
  QSFT_CHECK(t.dtype == DType::F32 || t.dtype == DType::BF16,
             name_of(name) + " is " + dtype_name(t.dtype) + ", expected F32 or BF16");
}

void expect_vector(const Tensor& t, DType dtype, int64_t n, const char* name) {
  expect_dtype(t, dtype, name);
  QSFT_CHECK(t.numel() == n,
             name_of(name) + " is " + t.shape_str() + ", expected " + std::to_string(n) + " elements");
}

// t is [rows, cols] (or flattens to it with cols last) of the given dtype.
void expect_matrix(const Tensor& t, DType dtype, int64_t rows, int64_t cols, const char* name) {
  expect_vector(t, dtype, rows * cols, name);
  QSFT_CHECK(t.ndim >= 1 && t.dim(-1) == cols,
             name_of(name) + " is " + t.shape_str() + ", expected last dimension " + std::to_string(cols));
}

void expect_heads(const Tensor& t, int64_t T, int64_t heads, int64_t D, const char* name) {
  expect_dtype(t, DType::BF16, name);
  QSFT_CHECK(t.ndim == 3 && t.dim(0) == T && t.dim(1) == heads && t.dim(2) == D,
             name_of(name) + " is " + t.shape_str() + ", expected [" + std::to_string(T) + ", " +
                 std::to_string(heads) + ", " + std::to_string(D) + "]");
}

// The layout's tensors on the device; cu_seqlens' values stay there (the kernels trust 0 = cu[0] <= ... = T).
void expect_layout(const SeqLayout& seq, int64_t T) {
  expect_vector(seq.positions, DType::I32, T, "positions");
  expect_vector(seq.cu_seqlens, DType::I32, int64_t(seq.num_seqs) + 1, "cu_seqlens");
  QSFT_CHECK(seq.num_seqs >= 1 || T == 0, "a layout with tokens needs at least one sequence");
}

cuda::GemmOperand operand(const Mat& m, const char* name) {
  QSFT_CHECK(m.dtype == DType::F32 || m.dtype == DType::BF16,
             name_of(name) + " is " + dtype_name(m.dtype) + ", expected F32 or BF16");
  QSFT_CHECK(m.ld >= m.cols && (m.data || m.rows * m.cols == 0), name_of(name) + ": bad view");
  return {m.data, m.dtype, m.rows, m.cols, m.ld};
}

class CudaOps final : public Ops {
 public:
  CudaOps()
      : stream_(cuda::stream_create()), ce_scratch_(stream_), attn_scratch_(stream_), reduce_scratch_(stream_) {}
  ~CudaOps() override {
    gemm_.reset();
    cuda::stream_destroy(stream_);
  }

  Device device() const override { return Device::CUDA; }
  std::string name() const override { return "cuda"; }

  void* alloc_bytes(size_t bytes) override { return cuda::device_alloc(bytes, stream_); }
  void free_bytes(void* p) override {
    cuda::stream_sync(stream_);  // work queued on it may still use p
    cuda::device_free(p);
  }
  void copy_to_device(void* dst, const void* host_src, size_t bytes) override {
    cuda::copy_h2d(dst, host_src, bytes, stream_);
  }
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override {
    cuda::copy_d2h(host_dst, src, bytes, stream_);
  }
  void zero(Tensor& t) override {
    if (t.data) cuda::fill_zero(t.data, t.nbytes(), stream_);
  }
  void copy(Tensor& dst, const Tensor& src) override {
    expect_on_device(src, "copy src");
    expect_vector(dst, src.dtype, src.numel(), "copy dst");
    cuda::copy_d2d(dst.data, src.data, src.nbytes(), stream_);
  }
  void synchronize() override { cuda::stream_sync(stream_); }

  void gemm(const Mat& A, bool transA, const Mat& B, bool transB, const Mat& C, float alpha, float beta,
            const Tensor* bias) override {
    const cuda::GemmOperand a = operand(A, "gemm A"), b = operand(B, "gemm B"), c = operand(C, "gemm C");
    const int64_t M = transA ? A.cols : A.rows, K = transA ? A.rows : A.cols;
    const int64_t N = transB ? B.rows : B.cols, K_b = transB ? B.cols : B.rows;
    QSFT_CHECK(K == K_b && C.rows == M && C.cols == N,
               "gemm shapes: op(A) [" + std::to_string(M) + ", " + std::to_string(K) + "], op(B) [" +
                   std::to_string(K_b) + ", " + std::to_string(N) + "], C [" + std::to_string(C.rows) + ", " +
                   std::to_string(C.cols) + "]");
    if (bias) expect_vector(*bias, C.dtype, N, "gemm bias");
    gemm_runner().run(a, transA, b, transB, c, alpha, beta, bias ? bias->data : nullptr);
  }

  void embedding_fwd(const Tensor& ids, const Tensor& table, Tensor& out) override {
    const int64_t T = ids.numel(), V = table.dim(0), H = table.dim(-1);
    expect_vector(ids, DType::I32, T, "ids");
    expect_float(table, "embedding table");
    expect_matrix(out, table.dtype, T, H, "embedding out");
    cuda::embedding_fwd(table.dtype, ids.i32(), table.data, T, V, H, out.data, stream_);
  }
  void neftune_noise(Tensor& x, float scale, uint64_t seed) override {
    expect_float(x, "neftune x");
    cuda::neftune_noise(x.dtype, x.data, x.numel(), scale, seed, stream_);
  }

  void rmsnorm_fwd(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd) override {
    const int64_t H = w.numel(), T = x.numel() / H;
    expect_rmsnorm(x, w, y, rstd, T, H);
    cuda::rmsnorm_fwd(x.dtype, x.data, w.data, T, H, eps, y.data, rstd.f32(), stream_);
  }
  void add_rmsnorm_fwd(Tensor& h, const Tensor& delta, const Tensor& w, float eps, Tensor& y, Tensor& rstd) override {
    const int64_t H = w.numel(), T = h.numel() / H;
    expect_rmsnorm(h, w, y, rstd, T, H);
    expect_matrix(delta, h.dtype, T, H, "rmsnorm delta");
    cuda::add_rmsnorm_fwd(h.dtype, h.data, delta.data, w.data, T, H, eps, y.data, rstd.f32(), stream_);
  }
  void rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx) override {
    const int64_t H = w.numel(), T = x.numel() / H;
    expect_rmsnorm(x, w, dy, rstd, T, H);
    expect_matrix(dx, x.dtype, T, H, "rmsnorm dx");
    cuda::rmsnorm_bwd(x.dtype, dy.data, x.data, w.data, rstd.f32(), T, H, dx.data, stream_);
  }

  void rope_fwd(Tensor& x, const SeqLayout& seq, float theta) override {
    expect_rope(x, seq);
    cuda::rope_fwd(x.dtype, x.data, seq.positions.i32(), x.dim(0), x.dim(1), x.dim(2), theta, stream_);
  }
  void rope_bwd(Tensor& dx, const SeqLayout& seq, float theta) override {
    expect_rope(dx, seq);
    cuda::rope_bwd(dx.dtype, dx.data, seq.positions.i32(), dx.dim(0), dx.dim(1), dx.dim(2), theta, stream_);
  }

  void attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& seq, Tensor& out,
                     Tensor& lse) override {
    const cuda::AttentionShape s = expect_attention(q, k, v, seq);
    expect_heads(out, s.T, s.n, s.D, "attention out");
    expect_matrix(lse, DType::F32, s.n, s.T, "attention lse");
    cuda::attention_fwd(s, q.data, k.data, v.data, out.data, lse.f32(), stream_);
  }
  void attention_bwd(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                     const Tensor& lse, const SeqLayout& seq, Tensor& dq, Tensor& dk, Tensor& dv) override {
    const cuda::AttentionShape s = expect_attention(q, k, v, seq);
    expect_heads(dout, s.T, s.n, s.D, "attention dout");
    expect_heads(out, s.T, s.n, s.D, "attention out");
    expect_matrix(lse, DType::F32, s.n, s.T, "attention lse");
    expect_heads(dq, s.T, s.n, s.D, "attention dq");
    expect_heads(dk, s.T, s.nkv, s.D, "attention dk");
    expect_heads(dv, s.T, s.nkv, s.D, "attention dv");
    void* scratch = attn_scratch_.get(cuda::attention_bwd_scratch_bytes(s));
    cuda::attention_bwd(s, dout.data, q.data, k.data, v.data, out.data, lse.f32(), dq.data, dk.data, dv.data,
                        scratch, stream_);
  }

  void swiglu_fwd(const Tensor& gate_up, Tensor& out) override {
    const int64_t I = out.dim(-1), T = out.numel() / I;
    expect_float(gate_up, "swiglu gate_up");
    expect_matrix(gate_up, gate_up.dtype, T, 2 * I, "swiglu gate_up");
    expect_matrix(out, gate_up.dtype, T, I, "swiglu out");
    cuda::swiglu_fwd(gate_up.dtype, gate_up.data, T, I, out.data, stream_);
  }
  void swiglu_bwd(const Tensor& dout, const Tensor& gate_up, Tensor& dgate_up) override {
    const int64_t I = dout.dim(-1), T = dout.numel() / I;
    expect_float(dout, "swiglu dout");
    expect_matrix(dout, dout.dtype, T, I, "swiglu dout");
    expect_matrix(gate_up, dout.dtype, T, 2 * I, "swiglu gate_up");
    expect_matrix(dgate_up, dout.dtype, T, 2 * I, "swiglu dgate_up");
    cuda::swiglu_bwd(dout.dtype, dout.data, gate_up.data, T, I, dgate_up.data, stream_);
  }

  void lm_head_ce(const Tensor& h, const Tensor& W, const Tensor& targets, float grad_scale, Tensor& loss_sum,
                  Tensor& correct, Tensor* dh) override {
    const int64_t V = W.dim(0), H = W.dim(-1), T = targets.numel();
    expect_float(W, "lm_head W");
    expect_matrix(W, W.dtype, V, H, "lm_head W");
    expect_matrix(h, W.dtype, T, H, "lm_head h");
    expect_vector(targets, DType::I32, T, "targets");
    expect_vector(loss_sum, DType::F32, 1, "loss_sum");
    expect_vector(correct, DType::I32, 1, "correct");
    const bool backward = dh && !dh->empty();
    if (backward) expect_matrix(*dh, W.dtype, T, H, "lm_head dh");
    cuda::LmHeadCe a;
    a.dt = W.dtype;
    a.h = h.data;
    a.W = W.data;
    a.targets = targets.i32();
    a.T = T;
    a.H = H;
    a.V = V;
    a.grad_scale = grad_scale;
    a.loss_sum = loss_sum.f32();
    a.correct = correct.i32();
    a.dh = backward ? dh->data : nullptr;
    cuda::lm_head_ce(a, gemm_runner(), ce_scratch_.get(cuda::lm_head_ce_scratch_bytes(a)), stream_);
  }

  void add_inplace(Tensor& y, const Tensor& x) override {
    expect_float(y, "y");
    expect_vector(x, y.dtype, y.numel(), "x");
    cuda::add_inplace(y.dtype, y.data, x.data, y.numel(), stream_);
  }
  void scale_inplace(Tensor& y, float s) override {
    expect_float(y, "y");
    cuda::scale_inplace(y.dtype, y.data, s, y.numel(), stream_);
  }
  void dropout(const Tensor& x, float p, uint64_t seed, Tensor& y) override {
    expect_float(x, "dropout x");
    expect_vector(y, x.dtype, x.numel(), "dropout y");
    QSFT_CHECK(p >= 0.0f && p < 1.0f, "dropout p must be in [0, 1), got " + std::to_string(p));
    cuda::dropout(x.dtype, x.data, x.numel(), p, seed, y.data, stream_);
  }
  double sum_squares(const Tensor& x) override {
    expect_float(x, "sum_squares x");
    void* scratch = reduce_scratch_.get(cuda::sum_squares_scratch_bytes(x.numel()));
    return cuda::sum_squares(x.dtype, x.data, x.numel(), scratch, stream_);
  }

  void adamw_step(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, const AdamW& h) override {
    const int64_t n = p.numel();
    expect_vector(p, DType::F32, n, "adamw p");
    expect_vector(g, DType::F32, n, "adamw g");
    expect_vector(m, DType::F32, n, "adamw m");
    expect_vector(v, DType::F32, n, "adamw v");
    QSFT_CHECK(h.step >= 1, "adamw step counts from 1");
    cuda::adamw_step(p.f32(), g.f32(), m.f32(), v.f32(), n, {h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.step},
                     stream_);
  }

 private:
  cuda::GemmRunner& gemm_runner() {
    if (!gemm_) gemm_ = std::make_unique<cuda::GemmRunner>(stream_);  // cuBLASLt only once a GEMM is asked for
    return *gemm_;
  }

  static void expect_rmsnorm(const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& rstd, int64_t T,
                             int64_t H) {
    expect_float(w, "rmsnorm w");
    expect_vector(w, w.dtype, H, "rmsnorm w");
    expect_matrix(x, w.dtype, T, H, "rmsnorm x");
    expect_matrix(y, w.dtype, T, H, "rmsnorm y/dy");
    expect_vector(rstd, DType::F32, T, "rmsnorm rstd");
  }
  static void expect_rope(const Tensor& x, const SeqLayout& seq) {
    expect_float(x, "rope x");
    QSFT_CHECK(x.ndim == 3 && x.dim(2) % 2 == 0, "rope x is " + x.shape_str() + ", expected [T, n, D] with D even");
    expect_layout(seq, x.dim(0));
  }
  static cuda::AttentionShape expect_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                               const SeqLayout& seq) {
    QSFT_CHECK(q.ndim == 3 && k.ndim == 3, "attention q, k must be [T, heads, D]");
    cuda::AttentionShape s;
    s.T = q.dim(0);
    s.n = q.dim(1);
    s.nkv = k.dim(1);
    s.D = q.dim(2);
    QSFT_CHECK(s.nkv > 0 && s.n % s.nkv == 0, "query heads must be a multiple of kv heads");
    QSFT_CHECK(cuda::attention_supports_head_dim(s.D),
               "the CUDA attention supports head_dim 16, 32, 64 and 128, not " + std::to_string(s.D));
    expect_heads(q, s.T, s.n, s.D, "attention q");
    expect_heads(k, s.T, s.nkv, s.D, "attention k");
    expect_heads(v, s.T, s.nkv, s.D, "attention v");
    expect_layout(seq, s.T);
    s.cu_seqlens = seq.cu_seqlens.i32();
    s.num_seqs = seq.num_seqs;
    return s;
  }

  void* stream_;
  std::unique_ptr<cuda::GemmRunner> gemm_;
  cuda::ScratchBuffer ce_scratch_, attn_scratch_, reduce_scratch_;
};

}  // namespace

bool cuda_available() {
  std::string why;
  return cuda::device_count(&why) > 0;
}

std::unique_ptr<Ops> make_cuda_ops() {
  std::string why;
  if (cuda::device_count(&why) == 0) throw InputError("no usable CUDA device: " + why);
  return std::make_unique<CudaOps>();
}

#else

bool cuda_available() { return false; }

std::unique_ptr<Ops> make_cuda_ops() {
  throw InputError(
      "this qwen-sft was built without the CUDA backend (rebuild with -DQSFT_CUDA=ON on a machine with nvcc)");
}

#endif

}  // namespace qsft
