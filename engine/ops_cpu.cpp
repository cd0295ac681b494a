// CpuOps: the fp32 reference backend. Ops (engine/ops.cpp) has checked the arguments; each *_impl calls its
// qsft::cpu function (kernels/NAME.h). Tensor::f32() refuses any other dtype. Memory is plain host memory, 64-byte
// aligned and zeroed.
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <vector>

#include "engine/base/half.h"
#include "engine/ops.h"
#include "kernels/adamw.h"
#include "kernels/adamw8bit.h"
#include "kernels/argmax.h"
#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/decode_attention.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/nf4.h"
#include "kernels/reduce.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "kernels/weight_grad.h"

namespace qsft {
namespace {

constexpr size_t kAlignment = 64;

const float* f32(const Mat& m, const char* name) {
  QSFT_CHECK(m.dtype == DType::F32, std::string(name) + " is " + dtype_name(m.dtype) + ", expected F32");
  return static_cast<const float*>(m.data);
}

class CpuOps final : public Ops {
 public:
  Device device() const override { return Device::CPU; }
  std::string name() const override { return "cpu"; }

  void* alloc_bytes(size_t bytes) override { return alloc(bytes, MemoryKind::device); }
  // The host's memory is this backend's: the same allocation, accounted as host memory.
  void* alloc_host_mapped(size_t bytes) override { return alloc(bytes, MemoryKind::host_mapped); }
  void free_bytes(void* p) override {
    note_free(p);
    std::free(p);
  }
  size_t bytes_held() const override { return Ops::bytes_held() + scratch_.capacity() * sizeof(float); }
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

 protected:
  void zero_impl(Tensor& t) override { std::memset(t.data, 0, t.nbytes()); }
  void copy_impl(Tensor& dst, const Tensor& src) override {
    const size_t row = size_t(src.row_elems()) * dtype_size(src.dtype), esize = dtype_size(src.dtype);
    if (src.contiguous() && dst.contiguous()) return void(std::memcpy(dst.data, src.data, src.nbytes()));
    for (int64_t r = 0; r < src.dim(0); ++r)  // row by row: either side a strided view
      std::memcpy(static_cast<char*>(dst.data) + size_t(r * dst.stride0()) * esize,
                  static_cast<const char*>(src.data) + size_t(r * src.stride0()) * esize, row);
  }
  // Storage only: the CPU backend computes in F32, but it can hold BF16 bits (e.g. to check the GPU's rounding).
  void cast_impl(const Tensor& src, Tensor& dst) override {
    const float* in = src.f32();
    uint16_t* out = static_cast<uint16_t*>(dst.data);
    for (int64_t i = 0; i < src.numel(); ++i) out[i] = f32_to_bf16(in[i]);
  }

  void gemm_impl(const Mat& A, bool transA, const Mat& B, bool transB, const Mat& C, float alpha, float beta,
                 const Tensor* bias, const GemmSizes& s, const void* c_src) override {
    if (c_src && c_src != C.data && beta != 0.0f) {  // the beta source into C first: C's rows and leading dimension
      Tensor dst(C.data, C.dtype, {C.rows, C.cols}, Device::CPU);
      dst.row_stride = C.ld;
      Tensor src = dst;
      src.data = const_cast<void*>(c_src);
      copy_impl(dst, src);
    }
    cpu::gemm(s.M, s.N, s.K, alpha, f32(A, "gemm A"), A.ld, transA, f32(B, "gemm B"), B.ld, transB, beta,
              const_cast<float*>(f32(C, "gemm C")), C.ld, bias ? bias->f32() : nullptr);
  }

  void bias_grad_impl(const Tensor& dy, Tensor& db, int64_t T, int64_t N) override {
    cpu::bias_grad(dy.f32(), T, N, dy.stride0(), db.f32());
  }
  // Rows of a 4-bit weight: the absmax (each part's dequantized first when double-quantized), then code * absmax in
  // fp32. The linear ops take the whole weight at once (no weight_scratch_limit): the dense GEMM's summation order.
  void dequantize_impl(const LinearWeight& W, int64_t row0, int64_t row1, Tensor& out) override {
    const Quant4& q = W.q;
    const int64_t first = row0 * W.in();
    std::vector<float> absmax;
    if (q.double_quant()) {
      absmax.resize(size_t(W.out() * W.in() / cpu::kQuant4Block));
      for (int p = 0; p < q.parts; ++p) {
        const int64_t b0 = W.part_row0(p) * W.in() / cpu::kQuant4Block;
        cpu::dequantize_absmax(q.absmax.as<uint8_t>() + b0, q.absmax2.f32() + W.absmax2_of(p), W.part_blocks(p),
                               q.offset[p], absmax.data() + b0);
      }
    }
    const float* am = (q.double_quant() ? absmax.data() : q.absmax.f32()) + first / cpu::kQuant4Block;
    cpu::dequantize_4bit(W.w.as<uint8_t>() + first / 2, am, (row1 - row0) * W.in(),
                         q.format == WeightFormat::nf4 ? cpu::Quant4Type::nf4 : cpu::Quant4Type::fp4, out.f32());
  }
  void* weight_scratch(size_t bytes) override {
    if (scratch_.size() * 4 < bytes) scratch_ = std::vector<float>((bytes + 3) / 4);  // exactly the largest
    return scratch_.data();
  }

  void embedding_fwd_impl(const Tensor& ids, const Tensor& table, Tensor& out) override {
    check_ids(ids, table.dim(0));
    cpu::embedding_fwd(ids.i32(), table.f32(), ids.numel(), table.dim(-1), out.f32());
  }
  void embedding_bwd_impl(const Tensor& ids, const Tensor& dout, Tensor& dtable) override {
    check_ids(ids, dtable.dim(0));
    cpu::embedding_bwd(ids.i32(), dout.f32(), ids.numel(), dtable.dim(-1), dtable.f32());
  }
  void neftune_noise_impl(Tensor& x, float scale, uint64_t seed) override {
    cpu::neftune_noise(x.f32(), x.numel(), scale, seed);
  }

  void rmsnorm_fwd_impl(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd, int64_t T,
                        int64_t H) override {
    cpu::rmsnorm_fwd(x.f32(), norm_rows(x, H), w.f32(), T, H, eps, y.f32(), norm_rows(y, H), rstd.f32());
  }
  void rmsnorm_bwd_impl(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx, int64_t T,
                        int64_t H, bool accumulate) override {
    cpu::rmsnorm_bwd(dy.f32(), norm_rows(dy, H), x.f32(), norm_rows(x, H), w.f32(), rstd.f32(), T, H, dx.f32(),
                     norm_rows(dx, H), accumulate);
  }
  void rmsnorm_wgrad_impl(const Tensor& dy, const Tensor& x, const Tensor& rstd, Tensor& dw, int64_t T,
                          int64_t H) override {
    cpu::rmsnorm_wgrad(dy.f32(), norm_rows(dy, H), x.f32(), norm_rows(x, H), rstd.f32(), T, H, dw.f32());
  }

  void rope_impl(Tensor& x, const SeqLayout& seq, const RopeFreqs& f, bool inverse) override {
    (inverse ? cpu::rope_bwd : cpu::rope_fwd)(x.f32(), seq.positions.i32(), x.dim(0), x.dim(1), x.dim(2), x.stride0(),
                                              f.inv_freq.f32(), f.attention_scaling);
  }

  void attention_fwd_impl(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& seq, Tensor& out,
                          Tensor& lse, const cpu::AttentionDims& d) override {
    cpu::attention_fwd(q.f32(), k.f32(), v.f32(), seq.cu_seqlens.i32(), seq.num_seqs, d, out.f32(), lse.f32());
  }
  void attention_bwd_impl(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const Tensor& lse, const SeqLayout& seq, Tensor& dq, Tensor& dk, Tensor& dv,
                          const cpu::AttentionDims& d) override {
    cpu::attention_bwd(dout.f32(), q.f32(), k.f32(), v.f32(), out.f32(), lse.f32(), seq.cu_seqlens.i32(), seq.num_seqs,
                       d, dq.f32(), dk.f32(), dv.f32());
  }

  void decode_attention_impl(const Tensor& q, const Tensor& k_new, const Tensor& v_new, Tensor& k_cache,
                             Tensor& v_cache, const Tensor& slot, const Tensor& len, Tensor& out,
                             const cpu::DecodeAttentionDims& d) override {
    cpu::kv_cache_append(k_new.f32(), v_new.f32(), slot.i32(), len.i32(), d, k_cache.f32(), v_cache.f32());
    cpu::decode_attention(q.f32(), k_cache.f32(), v_cache.f32(), slot.i32(), len.i32(), d, out.f32());
  }

  void swiglu_fwd_impl(const Tensor& gate_up, Tensor& out, int64_t T, int64_t I) override {
    cpu::swiglu_fwd(gate_up.f32(), T, I, out.f32());
  }
  void swiglu_bwd_impl(const Tensor& dout, const Tensor& gate_up, Tensor& dgate_up, int64_t T, int64_t I) override {
    cpu::swiglu_bwd(dout.f32(), gate_up.f32(), T, I, dgate_up.f32());
  }

  void argmax_rows_impl(const Tensor& logits, Tensor& out, int64_t R, int64_t V) override {
    cpu::argmax_rows(logits.f32(), R, V, out.i32());
  }
  void lm_head_ce_impl(const Tensor& h, const Tensor& W, const Tensor& targets, float grad_scale, Tensor& loss_sum,
                       Tensor& correct, Tensor* dh, Tensor* dW, const Tensor*) override {
    const int64_t V = W.dim(0), H = W.dim(-1), T = targets.numel();
    for (int64_t t = 0; t < T; ++t)
      QSFT_CHECK(targets.i32()[t] < V, "target " + std::to_string(targets.i32()[t]) + " outside the vocabulary [0, " +
                                           std::to_string(V) + ")");
    cpu::lm_head_ce(h.f32(), W.f32(), targets.i32(), T, H, V, grad_scale, loss_sum.f32(), correct.i32(),
                    dh ? dh->f32() : nullptr, dW ? dW->f32() : nullptr);
  }

  void add_inplace_impl(Tensor& y, const Tensor& x) override { cpu::add_inplace(y.f32(), x.f32(), y.numel()); }
  void scale_inplace_impl(Tensor& y, float s) override { cpu::scale_inplace(y.f32(), s, y.numel()); }
  void dropout_impl(const Tensor& x, float p, uint64_t seed, Tensor& y, bool accumulate) override {
    (accumulate ? cpu::dropout_add : cpu::dropout)(x.f32(), x.numel(), p, seed, y.f32());
  }
  double sum_squares_impl(const Tensor& x) override { return cpu::sum_squares(x.f32(), x.numel()); }
  void sum_squares_to_impl(const Tensor& x, Tensor& out) override { out.f32()[0] = float(sum_squares_impl(x)); }
  void adamw_step_impl(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, const AdamWHyper& h) override {
    cpu::adamw_step(p.f32(), g.f32(), m.f32(), v.f32(), p.numel(), h);
  }
  void adamw8bit_step_impl(Tensor& p, const Tensor& g, AdamW8bitMoments& s, const AdamWHyper& h,
                           int64_t decayed) override {
    cpu::adamw8bit_step(p.f32(), g.f32(), s.pointers(), p.numel(), h, decayed);
  }

 private:
  void* alloc(size_t bytes, MemoryKind kind) {
    const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment + kAlignment * (bytes == 0);
    void* p = std::aligned_alloc(kAlignment, rounded);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, rounded);
    note_alloc(p, bytes, kind);
    return p;
  }
  static void check_ids(const Tensor& ids, int64_t V) {
    for (int64_t t = 0; t < ids.numel(); ++t)
      QSFT_CHECK(ids.i32()[t] >= 0 && ids.i32()[t] < V,
                 "token id " + std::to_string(ids.i32()[t]) + " outside the vocabulary [0, " + std::to_string(V) + ")");
  }
  std::vector<float> scratch_;  // the weight scratch: one dequantized 4-bit weight
};

}  // namespace

std::unique_ptr<Ops> make_cpu_ops() { return std::make_unique<CpuOps>(); }

}  // namespace qsft
