// The CUDA backend: Ops (engine/ops.cpp) has checked dtypes and shapes on the host; each *_impl launches its
// qsft::cuda kernel (kernels/NAME_cuda.h, kernels/NAME.cu) on the backend's one compute stream. Activations and
// frozen weights are BF16 (F32 also works for every op but attention), LoRA parameters/gradients and optimizer
// state F32; GEMMs run on cuBLASLt. Without the CUDA build only the fallback at the bottom exists. No CUDA header is
// seen here: the kernels' launchers are plain C++ declarations.
#include "engine/ops.h"

#if defined(QSFT_HAVE_CUDA)
#include <memory>
#include <string>
#include <vector>

#include "kernels/adamw8bit_cuda.h"
#include "kernels/adamw_cuda.h"
#include "kernels/argmax_cuda.h"
#include "kernels/attention_cuda.h"
#include "kernels/cross_entropy_cuda.h"
#include "kernels/decode_attention_cuda.h"
#include "kernels/elementwise_cuda.h"
#include "kernels/embedding_cuda.h"
#include "kernels/gemm_cuda.h"
#include "kernels/graph_cuda.h"
#include "kernels/lora_db_du_cuda.h"
#include "kernels/lora_dropout_cuda.h"
#include "kernels/nf4.h"
#include "kernels/nf4_cuda.h"
#include "kernels/profile_cuda.h"
#include "kernels/reduce_cuda.h"
#include "kernels/rmsnorm_cuda.h"
#include "kernels/rope_cuda.h"
#include "kernels/runtime_cuda.h"
#include "kernels/skinny_gemm_cuda.h"
#include "kernels/swiglu_cuda.h"
#include "kernels/weight_grad_cuda.h"
#endif

namespace qsft {

#if defined(QSFT_HAVE_CUDA)

namespace {

cuda::GemmOperand operand(const Mat& m) { return {m.data, m.dtype, m.rows, m.cols, m.ld}; }

class CudaOps final : public Ops {
 public:
  CudaOps()
      : stream_(cuda::stream_create()),
        ce_scratch_(stream_),
        attn_scratch_(stream_),
        reduce_scratch_(stream_),
        emb_scratch_(stream_),
        weight_scratch_(stream_) {
    if (profiling()) timer_ = std::make_unique<cuda::SpanTimer>(stream_);
  }
  ~CudaOps() override {
    timer_.reset();
    gemm_.reset();
    cuda::stream_destroy(stream_);
  }

  Device device() const override { return Device::CUDA; }
  std::string name() const override { return "cuda"; }

  void* alloc_bytes(size_t bytes) override {
    void* p = cuda::device_alloc(bytes, stream_);
    note_alloc(p, bytes);
    return p;
  }
  // Pinned host memory mapped into the device's address space (UVA: the host pointer is the device pointer).
  void* alloc_host_mapped(size_t bytes) override {
    void* p = cuda::host_alloc_mapped(bytes, stream_);
    note_alloc(p, bytes, MemoryKind::host_mapped);
    return p;
  }
  void free_bytes(void* p) override {  // never throws (runs from destructors)
    if (note_free(p) == MemoryKind::host_mapped) return cuda::host_free(p, stream_);
    cuda::device_free(p, stream_);
  }
  // + the growable scratch buffers and the cuBLASLt workspace (made with the first GEMM).
  size_t bytes_held() const override {
    size_t b = Ops::bytes_held() + (gemm_ ? cuda::GemmRunner::kWorkspaceBytes : 0);
    for (const cuda::ScratchBuffer* s :
         {&ce_scratch_, &attn_scratch_, &reduce_scratch_, &emb_scratch_, &weight_scratch_})
      b += s->capacity();
    return b;
  }
  void copy_to_device(void* dst, const void* host_src, size_t bytes) override {
    cuda::copy_h2d(dst, host_src, bytes, stream_);
  }
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override {
    cuda::copy_d2h(host_dst, src, bytes, stream_);
  }
  void synchronize() override { cuda::stream_sync(stream_); }
  size_t memory_available() const override { return cuda::device_memory_free(); }
  void* stream() const override { return stream_; }

 protected:
  void zero_impl(Tensor& t) override { cuda::fill_zero(t.data, t.nbytes(), stream_); }
  void copy_impl(Tensor& dst, const Tensor& src) override {
    if (src.contiguous() && dst.contiguous()) return cuda::copy_d2d(dst.data, src.data, src.nbytes(), stream_);
    const size_t esize = dtype_size(src.dtype);  // rows of row_elems(), either side a strided view
    cuda::copy_d2d_2d(dst.data, size_t(dst.stride0()) * esize, src.data, size_t(src.stride0()) * esize,
                      size_t(src.row_elems()) * esize, size_t(src.dim(0)), stream_);
  }
  void cast_impl(const Tensor& src, Tensor& dst) override {
    cuda::cast_f32_to_bf16_2d(src.f32(), 1, src.numel(), src.numel(), dst.data, stream_);
  }

  // C (+)= alpha A op(B) with a small K (the LoRA up-projections) by the one-pass kernel, else cuBLASLt.
  void gemm_impl(const Mat& A, bool transA, const Mat& B, bool transB, const Mat& C, float alpha, float beta,
                 const Tensor* bias, const GemmSizes&, const void* c_src) override {
    const void* bias_data = bias ? bias->data : nullptr;
    if (cuda::skinny_add_fits(operand(A), transA, operand(B), transB, operand(C), beta, bias_data, c_src))
      return cuda::skinny_add(operand(A), operand(B), transB, operand(C), alpha, beta, stream_);
    gemm_runner().run(operand(A), transA, operand(B), transB, operand(C), alpha, beta, bias_data, c_src);
  }

  // Rows of a 4-bit weight dequantized by one kernel, into the weight scratch (then the dense GEMM: Ops::linear_impl,
  // chunk by chunk of at most kCudaWeightScratchBytes).
  void dequantize_impl(const LinearWeight& W, int64_t row0, int64_t row1, Tensor& out) override {
    const Quant4& q = W.q;
    cuda::Quant4View v;
    v.codes = W.w.as<uint8_t>();
    if (q.double_quant()) {
      v.qabsmax = q.absmax.as<uint8_t>();
      v.absmax2 = q.absmax2.f32();
    } else {
      v.absmax = q.absmax.f32();
    }
    v.parts = q.parts;
    for (int p = 0; p < q.parts; ++p) {
      v.offset[p] = q.offset[p];
      v.part_block[p] = W.part_row0(p) * W.in() / cpu::kQuant4Block;
      v.part_absmax2[p] = W.absmax2_of(p);
    }
    v.first = row0 * W.in();
    v.n = (row1 - row0) * W.in();
    v.code4 = cpu::quant4_code(q.format == WeightFormat::nf4 ? cpu::Quant4Type::nf4 : cpu::Quant4Type::fp4);
    v.dynamic = cpu::dynamic_code();
    cuda::dequantize_4bit(v, out.dtype, out.data, stream_);
  }
  void* weight_scratch(size_t bytes) override { return weight_scratch_.get(bytes); }
  size_t weight_scratch_limit() const override { return kCudaWeightScratchBytes; }

  void embedding_fwd_impl(const Tensor& ids, const Tensor& table, Tensor& out) override {
    cuda::embedding_fwd(table.dtype, ids.i32(), table.data, ids.numel(), table.dim(0), table.dim(-1), out.data,
                        stream_);
  }
  void embedding_bwd_impl(const Tensor& ids, const Tensor& dout, Tensor& dtable) override {
    // The grouping by id is made on the host (one wait for the ids: full fine-tuning only).
    std::vector<int32_t> host(size_t(ids.numel()));
    copy_to_host(host.data(), ids.data, host.size() * sizeof(int32_t));
    const int64_t V = dtable.dim(0);
    for (int32_t id : host)
      QSFT_CHECK(id >= 0 && id < V,
                 "token id " + std::to_string(id) + " outside the vocabulary [0, " + std::to_string(V) + ")");
    void* scratch = emb_scratch_.get(cuda::embedding_bwd_scratch_bytes(ids.numel()));
    cuda::embedding_bwd(dout.dtype, host.data(), dout.data, ids.numel(), dtable.dim(-1), dtable.f32(), scratch,
                        stream_);
  }
  void bias_grad_impl(const Tensor& dy, Tensor& db, int64_t T, int64_t N) override {
    cuda::bias_grad(dy.dtype, dy.data, T, N, dy.stride0(), db.f32(), stream_);
  }
  void neftune_noise_impl(Tensor& x, float scale, uint64_t seed) override {
    cuda::neftune_noise(x.dtype, x.data, x.numel(), scale, seed, stream_);
  }

  void rmsnorm_fwd_impl(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd, int64_t T,
                        int64_t H) override {
    cuda::rmsnorm_fwd(x.dtype, x.data, norm_rows(x, H), w.data, T, H, eps, y.data, norm_rows(y, H), rstd.f32(),
                      stream_);
  }
  void rmsnorm_bwd_impl(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx, int64_t T,
                        int64_t H, bool accumulate) override {
    cuda::rmsnorm_bwd(x.dtype, dy.data, norm_rows(dy, H), x.data, norm_rows(x, H), w.data, rstd.f32(), T, H, dx.data,
                      norm_rows(dx, H), accumulate, stream_);
  }
  void rmsnorm_wgrad_impl(const Tensor& dy, const Tensor& x, const Tensor& rstd, Tensor& dw, int64_t T,
                          int64_t H) override {
    cuda::rmsnorm_wgrad(x.dtype, dy.data, norm_rows(dy, H), x.data, norm_rows(x, H), rstd.f32(), T, H, dw.f32(),
                        stream_);
  }

  void rope_impl(Tensor& x, const SeqLayout& seq, const RopeFreqs& f, bool inverse) override {
    (inverse ? cuda::rope_bwd : cuda::rope_fwd)(x.dtype, x.data, seq.positions.i32(), x.dim(0), x.dim(1), x.dim(2),
                                                x.stride0(), f.inv_freq.f32(), f.attention_scaling, stream_);
  }

  void attention_fwd_impl(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& seq, Tensor& out,
                          Tensor& lse, const cpu::AttentionDims& d) override {
    cuda::attention_fwd(shape_of(q, d, seq), q.data, k.data, v.data, out.data, lse.f32(), stream_);
  }
  void attention_bwd_impl(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const Tensor& lse, const SeqLayout& seq, Tensor& dq, Tensor& dk, Tensor& dv,
                          const cpu::AttentionDims& d) override {
    const cuda::AttentionShape s = shape_of(q, d, seq);
    void* scratch = attn_scratch_.get(cuda::attention_bwd_scratch_bytes(s));
    cuda::attention_bwd(s, dout.data, q.data, k.data, v.data, out.data, lse.f32(), dq.data, dk.data, dv.data, scratch,
                        stream_);
  }

  void decode_attention_impl(const Tensor& q, const Tensor& k_new, const Tensor& v_new, Tensor& k_cache,
                             Tensor& v_cache, const Tensor& slot, const Tensor& len, Tensor& out,
                             const cpu::DecodeAttentionDims& d) override {
    QSFT_CHECK(d.D <= cuda::kDecodeAttentionMaxHeadDim,
               "the CUDA decode attention supports head_dim up to 256, not " + std::to_string(d.D));
    cuda::kv_cache_append(q.dtype, k_new.data, v_new.data, slot.i32(), len.i32(), d, k_cache.data, v_cache.data,
                          stream_);
    void* scratch = attn_scratch_.get(cuda::decode_attention_scratch_bytes(d));  // split-K partial results
    cuda::decode_attention(q.dtype, q.data, k_cache.data, v_cache.data, slot.i32(), len.i32(), d, out.data, scratch,
                           stream_);
  }

  void swiglu_fwd_impl(const Tensor& gate_up, Tensor& out, int64_t T, int64_t I) override {
    cuda::swiglu_fwd(gate_up.dtype, gate_up.data, T, I, out.data, stream_);
  }
  void swiglu_bwd_impl(const Tensor& dout, const Tensor& gate_up, Tensor& dgate_up, int64_t T, int64_t I) override {
    cuda::swiglu_bwd(dout.dtype, dout.data, gate_up.data, T, I, dgate_up.data, stream_);
  }

  void argmax_rows_impl(const Tensor& logits, Tensor& out, int64_t R, int64_t V) override {
    cuda::argmax_rows(logits.f32(), R, V, out.i32(), stream_);
  }
  void lm_head_ce_impl(const Tensor& h, const Tensor& W, const Tensor& targets, float grad_scale, Tensor& loss_sum,
                       Tensor& correct, Tensor* dh, Tensor* dW, const Tensor* scratch) override {
    cuda::LmHeadCe a;
    a.dt = W.dtype;
    a.h = h.data;
    a.W = W.data;
    a.targets = targets.i32();
    a.T = targets.numel();
    a.H = W.dim(-1);
    a.V = W.dim(0);
    a.grad_scale = grad_scale;
    a.loss_sum = loss_sum.f32();
    a.correct = correct.i32();
    a.dh = dh ? dh->data : nullptr;
    a.dW = dW ? dW->f32() : nullptr;
    const size_t need = cuda::lm_head_ce_scratch_bytes(a);
    void* lent = scratch && scratch->nbytes() >= need ? scratch->data : nullptr;
    cuda::lm_head_ce(a, gemm_runner(), lent ? lent : ce_scratch_.get(need), stream_);
  }

  void add_inplace_impl(Tensor& y, const Tensor& x) override {
    cuda::add_inplace(y.dtype, y.data, x.data, y.numel(), stream_);
  }
  void scale_inplace_impl(Tensor& y, float s) override { cuda::scale_inplace(y.dtype, y.data, s, y.numel(), stream_); }
  void dropout_impl(const Tensor& x, float p, uint64_t seed, Tensor& y, bool accumulate) override {
    (accumulate ? cuda::dropout_add : cuda::dropout)(x.dtype, x.data, x.numel(), p, seed, y.data, stream_);
  }
  // The fused kernels where they take the shapes (BF16, in a multiple of 8, r of 8 (forward) or 16 (dA), n r <= 192),
  // else Ops' composition.
  void lora_a_dropout_impl(const Tensor& x, const Tensor& A, float p, std::span<const uint64_t> seeds, Tensor& u,
                           Tensor& scratch, const GemmSizes& s) override {
    const int n = int(seeds.size());
    const int64_t r = s.N / n;
    if (!cuda::lora_a_dropout_fits(x.dtype, s.K, r, n, x.data, A.data))
      return Ops::lora_a_dropout_impl(x, A, p, seeds, u, scratch, s);
    cuda::lora_a_dropout(x.data, s.M, s.K, A.data, r, n, p, seeds.data(), u.data, u.stride0(), scratch.data,
                         scratch.nbytes(), stream_);
  }
  void lora_da_dropout_impl(const Tensor& du, const Tensor& x, float p, std::span<const uint64_t> seeds, Tensor& dA,
                            Tensor& scratch, const GemmSizes& s) override {
    const int n = int(seeds.size());
    const int64_t r = s.M / n;
    if (!cuda::lora_da_dropout_fits(x.dtype, s.N, r, n, x.data, du.data))
      return Ops::lora_da_dropout_impl(du, x, p, seeds, dA, scratch, s);
    cuda::lora_da_dropout(du.data, x.data, s.K, s.N, r, n, p, seeds.data(), dA.f32(), scratch.data, scratch.nbytes(),
                          stream_);
  }
  // One read of dy where the kernel takes the shapes (BF16, r 16) and the scratch holds its partial sums, else the
  // two GEMMs.
  void lora_db_du_impl(const Tensor& dy, const Tensor& u, const Tensor& B, float s, Tensor& dB, Tensor& du,
                       Tensor& scratch, const GemmSizes& sz) override {
    const bool fits = cuda::lora_db_du_fits(dy.dtype, sz.K, sz.N, dy.data, dy.stride0(), u.data, u.stride0(), B.data,
                                            du.data, du.stride0());
    if (!fits || !cuda::lora_db_du(dy.data, dy.stride0(), u.data, u.stride0(), B.data, sz.M, sz.K, sz.N, s, dB.f32(),
                                   du.data, du.stride0(), scratch.data, scratch.nbytes(), stream_))
      Ops::lora_db_du_impl(dy, u, B, s, dB, du, scratch, sz);
  }
  // One kernel for every member where it takes the shapes (BF16, r a multiple of 8 up to 64), else Ops' composition.
  void lora_dx_dropout_impl(const Tensor& du, const Tensor& A, float p, std::span<const uint64_t> seeds, Tensor& dx,
                            Tensor& scratch, const GemmSizes& s, bool accumulate) override {
    const int n = int(seeds.size());
    const int64_t r = s.K / n;
    if (!cuda::lora_dx_dropout_fits(dx.dtype, s.N, r, n, du.data, A.data, dx.data))
      return Ops::lora_dx_dropout_impl(du, A, p, seeds, dx, scratch, s, accumulate);
    cuda::lora_dx_dropout(du.data, A.data, s.M, s.N, r, n, p, seeds.data(), dx.data, s.N, accumulate, stream_);
  }
  double sum_squares_impl(const Tensor& x) override {
    void* scratch = reduce_scratch_.get(cuda::sum_squares_scratch_bytes(x.numel()));
    return cuda::sum_squares(x.dtype, x.data, x.numel(), scratch, stream_);
  }
  void sum_squares_to_impl(const Tensor& x, Tensor& out) override {
    void* scratch = reduce_scratch_.get(cuda::sum_squares_scratch_bytes(x.numel()));
    cuda::sum_squares_to(x.dtype, x.data, x.numel(), scratch, out.f32(), stream_);
  }
  void adamw_step_impl(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, const AdamWHyper& h) override {
    cuda::adamw_step(p.f32(), g.f32(), m.f32(), v.f32(), p.numel(), h, stream_);
  }
  void adamw8bit_step_impl(Tensor& p, const Tensor& g, AdamW8bitMoments& s, const AdamWHyper& h,
                           int64_t decayed) override {
    cuda::adamw8bit_step(p.f32(), g.f32(), s.pointers(), p.numel(), h, decayed, stream_);
  }

  // Not while profiling (events around every op) or with synchronised launches (a sync ends any capture).
  bool can_capture() const override { return !profiling() && !cuda::sync_launches(); }
  void begin_capture() override {
    QSFT_CHECK(can_capture(), "graph capture is off while profiling or with synchronised launches");
    cuda::graph_capture_begin(stream_);
  }
  std::unique_ptr<Graph> end_capture(std::string* why) override {
    void* exec = cuda::graph_capture_end(stream_, why);
    return exec ? std::make_unique<CudaGraph>(exec, scratch_epoch()) : nullptr;
  }
  bool replay(Graph& g) override {
    auto& cg = static_cast<CudaGraph&>(g);
    if (cg.epoch != scratch_epoch()) return false;
    cuda::graph_launch(cg.exec, stream_);
    return true;
  }

  void profile_begin(int slot) override { timer_->begin(slot); }
  void profile_end(int slot) override { timer_->end(slot); }
  void profile_collect(std::vector<double>& ms) override { ms = timer_->collect(); }

 private:
  // A recorded graph and the scratch_epoch() it was recorded at: its launches point into the scratch buffers.
  struct CudaGraph final : Graph {
    CudaGraph(void* e, int ep) : exec(e), epoch(ep) {}
    ~CudaGraph() override { cuda::graph_destroy(exec); }
    void* exec;
    int epoch;
  };
  // Changes whenever a scratch buffer moves (it grew) or the cuBLASLt workspace appears.
  int scratch_epoch() const {
    int e = gemm_ ? 1 + gemm_->scratch_grows() : 0;
    for (const cuda::ScratchBuffer* s :
         {&ce_scratch_, &attn_scratch_, &reduce_scratch_, &emb_scratch_, &weight_scratch_})
      e += s->grow_count();
    return e;
  }

  cuda::GemmRunner& gemm_runner() {
    if (!gemm_) gemm_ = std::make_unique<cuda::GemmRunner>(stream_);  // cuBLASLt only once a GEMM is asked for
    return *gemm_;
  }

  // The CUDA attention computes in BF16 for head dims that are multiples of 8 up to 128.
  static cuda::AttentionShape shape_of(const Tensor& q, const cpu::AttentionDims& d, const SeqLayout& seq) {
    QSFT_CHECK(q.dtype == DType::BF16, std::string("the CUDA attention takes BF16, not ") + dtype_name(q.dtype));
    QSFT_CHECK(cuda::attention_supports_head_dim(d.D),
               "the CUDA attention supports head_dim a multiple of 8 from 8 to " +
                   std::to_string(cuda::kAttentionMaxHeadDim) + ", not " + std::to_string(d.D));
    cuda::AttentionShape s;
    s.T = d.T;
    s.n = d.n;
    s.nkv = d.nkv;
    s.D = d.D;
    s.q_ld = d.q_stride();
    s.k_ld = d.k_stride();
    s.v_ld = d.v_stride();
    s.cu_seqlens = seq.cu_seqlens.i32();
    s.num_seqs = seq.num_seqs;
    return s;
  }

  void* stream_;
  std::unique_ptr<cuda::GemmRunner> gemm_;
  std::unique_ptr<cuda::SpanTimer> timer_;  // only while profiling
  cuda::ScratchBuffer ce_scratch_, attn_scratch_, reduce_scratch_, emb_scratch_;
  cuda::ScratchBuffer weight_scratch_;  // one dequantized 4-bit weight (the largest: planned, engine/train/plan.cpp)
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
