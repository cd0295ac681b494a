// CpuOps: the fp32 reference backend. Every op checks dtypes and shapes, then calls its qsft::cpu function
// (kernels/NAME.h). Memory is plain host memory, 64-byte aligned and zeroed.
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>

#include "engine/ops.h"
#include "engine/ops_checks.h"
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

const OpsChecks expect{Device::CPU};

void expect_mat(const Mat& m, const char* name) {
  QSFT_CHECK(m.dtype == DType::F32, std::string(name) + " is " + dtype_name(m.dtype) + ", expected F32");
  OpsChecks::view(m, name);
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
    expect.vector(dst, src.dtype, src.numel(), "copy dst");
    if (src.numel() > 0) std::memcpy(dst.data, src.data, src.nbytes());
  }

  void gemm(const Mat& A, bool transA, const Mat& B, bool transB, const Mat& C, float alpha, float beta,
            const Tensor* bias) override {
    expect_mat(A, "gemm A");
    expect_mat(B, "gemm B");
    expect_mat(C, "gemm C");
    const auto [M, N, K] = expect.gemm(A, transA, B, transB, C, bias);
    cpu::gemm(M, N, K, alpha, static_cast<const float*>(A.data), A.ld, transA, static_cast<const float*>(B.data), B.ld,
              transB, beta, static_cast<float*>(C.data), C.ld, bias ? bias->f32() : nullptr);
  }

  void embedding_fwd(const Tensor& ids, const Tensor& table, Tensor& out) override {
    const int64_t T = ids.numel(), V = table.dim(0), H = table.dim(-1);
    expect.vector(ids, DType::I32, T, "ids");
    expect.matrix(table, DType::F32, V, H, "embedding table");
    expect.matrix(out, DType::F32, T, H, "embedding out");
    for (int64_t t = 0; t < T; ++t)
      QSFT_CHECK(ids.i32()[t] >= 0 && ids.i32()[t] < V,
                 "token id " + std::to_string(ids.i32()[t]) + " outside the vocabulary [0, " + std::to_string(V) + ")");
    cpu::embedding_fwd(ids.i32(), table.f32(), T, H, out.f32());
  }
  void neftune_noise(Tensor& x, float scale, uint64_t seed) override {
    expect.dtype(x, DType::F32, "neftune x");
    cpu::neftune_noise(x.f32(), x.numel(), scale, seed);
  }

  void rmsnorm_fwd(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd) override {
    const int64_t H = w.numel(), T = x.numel() / H;
    expect.rmsnorm(x, w, y, rstd, T, H, DType::F32);
    cpu::rmsnorm_fwd(x.f32(), w.f32(), T, H, eps, y.f32(), rstd.f32());
  }
  void add_rmsnorm_fwd(Tensor& h, const Tensor& delta, const Tensor& w, float eps, Tensor& y, Tensor& rstd) override {
    const int64_t H = w.numel(), T = h.numel() / H;
    expect.rmsnorm(h, w, y, rstd, T, H, DType::F32);
    expect.matrix(delta, DType::F32, T, H, "rmsnorm delta");
    cpu::add_rmsnorm_fwd(h.f32(), delta.f32(), w.f32(), T, H, eps, y.f32(), rstd.f32());
  }
  void rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx) override {
    const int64_t H = w.numel(), T = x.numel() / H;
    expect.rmsnorm(x, w, dy, rstd, T, H, DType::F32);
    expect.matrix(dx, DType::F32, T, H, "rmsnorm dx");
    cpu::rmsnorm_bwd(dy.f32(), x.f32(), w.f32(), rstd.f32(), T, H, dx.f32());
  }

  void rope_fwd(Tensor& x, const SeqLayout& seq, float theta) override {
    expect.dtype(x, DType::F32, "rope x");
    expect.rope(x, seq);
    cpu::rope_fwd(x.f32(), seq.positions.i32(), x.dim(0), x.dim(1), x.dim(2), theta);
  }
  void rope_bwd(Tensor& dx, const SeqLayout& seq, float theta) override {
    expect.dtype(dx, DType::F32, "rope x");
    expect.rope(dx, seq);
    cpu::rope_bwd(dx.f32(), seq.positions.i32(), dx.dim(0), dx.dim(1), dx.dim(2), theta);
  }

  void attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& seq, Tensor& out,
                     Tensor& lse) override {
    const cpu::AttentionDims d = expect.attention(q, k, v, seq, DType::F32);
    expect.attention_outputs(out, lse, d, DType::F32);
    cpu::attention_fwd(q.f32(), k.f32(), v.f32(), seq.cu_seqlens.i32(), seq.num_seqs, d, out.f32(), lse.f32());
  }
  void attention_bwd(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                     const Tensor& lse, const SeqLayout& seq, Tensor& dq, Tensor& dk, Tensor& dv) override {
    const cpu::AttentionDims d = expect.attention(q, k, v, seq, DType::F32);
    expect.attention_grads(dout, out, lse, dq, dk, dv, d, DType::F32);
    cpu::attention_bwd(dout.f32(), q.f32(), k.f32(), v.f32(), out.f32(), lse.f32(), seq.cu_seqlens.i32(), seq.num_seqs,
                       d, dq.f32(), dk.f32(), dv.f32());
  }

  void swiglu_fwd(const Tensor& gate_up, Tensor& out) override {
    const int64_t I = out.dim(-1), T = out.numel() / I;
    expect.matrix(gate_up, DType::F32, T, 2 * I, "swiglu gate_up");
    expect.matrix(out, DType::F32, T, I, "swiglu out");
    cpu::swiglu_fwd(gate_up.f32(), T, I, out.f32());
  }
  void swiglu_bwd(const Tensor& dout, const Tensor& gate_up, Tensor& dgate_up) override {
    const int64_t I = dout.dim(-1), T = dout.numel() / I;
    expect.matrix(dout, DType::F32, T, I, "swiglu dout");
    expect.matrix(gate_up, DType::F32, T, 2 * I, "swiglu gate_up");
    expect.matrix(dgate_up, DType::F32, T, 2 * I, "swiglu dgate_up");
    cpu::swiglu_bwd(dout.f32(), gate_up.f32(), T, I, dgate_up.f32());
  }

  void lm_head_ce(const Tensor& h, const Tensor& W, const Tensor& targets, float grad_scale, Tensor& loss_sum,
                  Tensor& correct, Tensor* dh) override {
    const int64_t V = W.dim(0), H = W.dim(-1), T = targets.numel();
    const bool backward = expect.lm_head_ce(h, W, targets, loss_sum, correct, dh, DType::F32);
    for (int64_t t = 0; t < T; ++t)
      QSFT_CHECK(targets.i32()[t] < V, "target " + std::to_string(targets.i32()[t]) + " outside the vocabulary [0, " +
                                           std::to_string(V) + ")");
    cpu::lm_head_ce(h.f32(), W.f32(), targets.i32(), T, H, V, grad_scale, loss_sum.f32(), correct.i32(),
                    backward ? dh->f32() : nullptr);
  }

  void add_inplace(Tensor& y, const Tensor& x) override {
    expect.dtype(y, DType::F32, "y");
    expect.vector(x, DType::F32, y.numel(), "x");
    cpu::add_inplace(y.f32(), x.f32(), y.numel());
  }
  void scale_inplace(Tensor& y, float s) override {
    expect.dtype(y, DType::F32, "y");
    cpu::scale_inplace(y.f32(), s, y.numel());
  }
  void dropout(const Tensor& x, float p, uint64_t seed, Tensor& y) override {
    expect.dtype(x, DType::F32, "dropout x");
    expect.dropout(x, p, y);
    cpu::dropout(x.f32(), x.numel(), p, seed, y.f32());
  }
  double sum_squares(const Tensor& x) override {
    expect.dtype(x, DType::F32, "sum_squares x");
    return cpu::sum_squares(x.f32(), x.numel());
  }

  void adamw_step(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, const AdamW& h) override {
    const int64_t n = p.numel();
    expect.adamw(p, g, m, v, h.step);
    cpu::adamw_step(p.f32(), g.f32(), m.f32(), v.f32(), n, {h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.step});
  }
};

}  // namespace

std::unique_ptr<Ops> make_cpu_ops() { return std::make_unique<CpuOps>(); }

}  // namespace qsft
