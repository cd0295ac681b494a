// The CUDA backend: every op checks dtypes and shapes on the host, then launches its qsft::cuda kernel
// (kernels/NAME_cuda.h, kernels/NAME.cu) on the backend's one compute stream. Activations and frozen weights are
// BF16 (F32 also works for every op but attention), LoRA parameters/gradients and optimizer state F32; GEMMs run
// on cuBLASLt. Without the CUDA build only the fallback at the bottom exists. No CUDA header is seen here: the
// kernels' launchers are plain C++ declarations.
#include "engine/ops.h"

#if defined(QSFT_HAVE_CUDA)
#include <memory>
#include <string>

#include "engine/ops_checks.h"
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

const OpsChecks expect{Device::CUDA};

cuda::GemmOperand operand(const Mat& m, const char* name) {
  QSFT_CHECK(m.dtype == DType::F32 || m.dtype == DType::BF16,
             std::string(name) + " is " + dtype_name(m.dtype) + ", expected F32 or BF16");
  OpsChecks::view(m, name);
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
  void free_bytes(void* p) override { cuda::device_free(p, stream_); }  // never throws (runs from destructors)
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
    expect.placed(src, "copy src");
    expect.vector(dst, src.dtype, src.numel(), "copy dst");
    cuda::copy_d2d(dst.data, src.data, src.nbytes(), stream_);
  }
  void synchronize() override { cuda::stream_sync(stream_); }

  void gemm(const Mat& A, bool transA, const Mat& B, bool transB, const Mat& C, float alpha, float beta,
            const Tensor* bias) override {
    const cuda::GemmOperand a = operand(A, "gemm A"), b = operand(B, "gemm B"), c = operand(C, "gemm C");
    expect.gemm(A, transA, B, transB, C, bias);
    gemm_runner().run(a, transA, b, transB, c, alpha, beta, bias ? bias->data : nullptr);
  }

  void embedding_fwd(const Tensor& ids, const Tensor& table, Tensor& out) override {
    const int64_t T = ids.numel(), V = table.dim(0), H = table.dim(-1);
    expect.vector(ids, DType::I32, T, "ids");
    expect.floating(table, "embedding table");
    expect.matrix(out, table.dtype, T, H, "embedding out");
    cuda::embedding_fwd(table.dtype, ids.i32(), table.data, T, V, H, out.data, stream_);
  }
  void neftune_noise(Tensor& x, float scale, uint64_t seed) override {
    expect.floating(x, "neftune x");
    cuda::neftune_noise(x.dtype, x.data, x.numel(), scale, seed, stream_);
  }

  void rmsnorm_fwd(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd) override {
    const int64_t H = w.numel(), T = x.numel() / H;
    expect.floating(w, "rmsnorm w");
    expect.rmsnorm(x, w, y, rstd, T, H, w.dtype);
    cuda::rmsnorm_fwd(x.dtype, x.data, w.data, T, H, eps, y.data, rstd.f32(), stream_);
  }
  void add_rmsnorm_fwd(Tensor& h, const Tensor& delta, const Tensor& w, float eps, Tensor& y, Tensor& rstd) override {
    const int64_t H = w.numel(), T = h.numel() / H;
    expect.floating(w, "rmsnorm w");
    expect.rmsnorm(h, w, y, rstd, T, H, w.dtype);
    expect.matrix(delta, h.dtype, T, H, "rmsnorm delta");
    cuda::add_rmsnorm_fwd(h.dtype, h.data, delta.data, w.data, T, H, eps, y.data, rstd.f32(), stream_);
  }
  void rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx) override {
    const int64_t H = w.numel(), T = x.numel() / H;
    expect.floating(w, "rmsnorm w");
    expect.rmsnorm(x, w, dy, rstd, T, H, w.dtype);
    expect.matrix(dx, x.dtype, T, H, "rmsnorm dx");
    cuda::rmsnorm_bwd(x.dtype, dy.data, x.data, w.data, rstd.f32(), T, H, dx.data, stream_);
  }

  void rope_fwd(Tensor& x, const SeqLayout& seq, float theta) override {
    expect.floating(x, "rope x");
    expect.rope(x, seq);
    cuda::rope_fwd(x.dtype, x.data, seq.positions.i32(), x.dim(0), x.dim(1), x.dim(2), theta, stream_);
  }
  void rope_bwd(Tensor& dx, const SeqLayout& seq, float theta) override {
    expect.floating(dx, "rope x");
    expect.rope(dx, seq);
    cuda::rope_bwd(dx.dtype, dx.data, seq.positions.i32(), dx.dim(0), dx.dim(1), dx.dim(2), theta, stream_);
  }

  void attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& seq, Tensor& out,
                     Tensor& lse) override {
    const cpu::AttentionDims d = expect_attention(q, k, v, seq);
    expect.attention_outputs(out, lse, d, DType::BF16);
    cuda::attention_fwd(shape_of(d, seq), q.data, k.data, v.data, out.data, lse.f32(), stream_);
  }
  void attention_bwd(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                     const Tensor& lse, const SeqLayout& seq, Tensor& dq, Tensor& dk, Tensor& dv) override {
    const cpu::AttentionDims d = expect_attention(q, k, v, seq);
    expect.attention_grads(dout, out, lse, dq, dk, dv, d, DType::BF16);
    const cuda::AttentionShape s = shape_of(d, seq);
    void* scratch = attn_scratch_.get(cuda::attention_bwd_scratch_bytes(s));
    cuda::attention_bwd(s, dout.data, q.data, k.data, v.data, out.data, lse.f32(), dq.data, dk.data, dv.data,
                        scratch, stream_);
  }

  void swiglu_fwd(const Tensor& gate_up, Tensor& out) override {
    const int64_t I = out.dim(-1), T = out.numel() / I;
    expect.floating(gate_up, "swiglu gate_up");
    expect.matrix(gate_up, gate_up.dtype, T, 2 * I, "swiglu gate_up");
    expect.matrix(out, gate_up.dtype, T, I, "swiglu out");
    cuda::swiglu_fwd(gate_up.dtype, gate_up.data, T, I, out.data, stream_);
  }
  void swiglu_bwd(const Tensor& dout, const Tensor& gate_up, Tensor& dgate_up) override {
    const int64_t I = dout.dim(-1), T = dout.numel() / I;
    expect.floating(dout, "swiglu dout");
    expect.matrix(dout, dout.dtype, T, I, "swiglu dout");
    expect.matrix(gate_up, dout.dtype, T, 2 * I, "swiglu gate_up");
    expect.matrix(dgate_up, dout.dtype, T, 2 * I, "swiglu dgate_up");
    cuda::swiglu_bwd(dout.dtype, dout.data, gate_up.data, T, I, dgate_up.data, stream_);
  }

  void lm_head_ce(const Tensor& h, const Tensor& W, const Tensor& targets, float grad_scale, Tensor& loss_sum,
                  Tensor& correct, Tensor* dh) override {
    const int64_t V = W.dim(0), H = W.dim(-1), T = targets.numel();
    expect.floating(W, "lm_head W");
    const bool backward = expect.lm_head_ce(h, W, targets, loss_sum, correct, dh, W.dtype);
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
    expect.floating(y, "y");
    expect.vector(x, y.dtype, y.numel(), "x");
    cuda::add_inplace(y.dtype, y.data, x.data, y.numel(), stream_);
  }
  void scale_inplace(Tensor& y, float s) override {
    expect.floating(y, "y");
    cuda::scale_inplace(y.dtype, y.data, s, y.numel(), stream_);
  }
  void dropout(const Tensor& x, float p, uint64_t seed, Tensor& y) override {
    expect.floating(x, "dropout x");
    expect.dropout(x, p, y);
    cuda::dropout(x.dtype, x.data, x.numel(), p, seed, y.data, stream_);
  }
  double sum_squares(const Tensor& x) override {
    expect.floating(x, "sum_squares x");
    void* scratch = reduce_scratch_.get(cuda::sum_squares_scratch_bytes(x.numel()));
    return cuda::sum_squares(x.dtype, x.data, x.numel(), scratch, stream_);
  }

  void adamw_step(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, const AdamW& h) override {
    const int64_t n = p.numel();
    expect.adamw(p, g, m, v, h.step);
    cuda::adamw_step(p.f32(), g.f32(), m.f32(), v.f32(), n, {h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.step},
                     stream_);
  }

 private:
  cuda::GemmRunner& gemm_runner() {
    if (!gemm_) gemm_ = std::make_unique<cuda::GemmRunner>(stream_);  // cuBLASLt only once a GEMM is asked for
    return *gemm_;
  }

  static cpu::AttentionDims expect_attention(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& seq) {
    const cpu::AttentionDims d = expect.attention(q, k, v, seq, DType::BF16);
    QSFT_CHECK(cuda::attention_supports_head_dim(d.D),
               "the CUDA attention supports head_dim 16, 32, 64 and 128, not " + std::to_string(d.D));
    return d;
  }
  static cuda::AttentionShape shape_of(const cpu::AttentionDims& d, const SeqLayout& seq) {
    cuda::AttentionShape s;
    s.T = d.T;
    s.n = d.n;
    s.nkv = d.nkv;
    s.D = d.D;
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
