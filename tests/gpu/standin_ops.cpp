// The stand-in backend of the GPU tests (tests/gpu/standin_ops.h): Ops' checks run in the public methods
// (engine/ops.cpp); each *_impl here only verifies that every operand lies inside one live allocation of this backend
// (as a kernel's reads and writes would have to), then returns. Host copies are real (memcpy, bounds checked). Graph
// capture follows Ops' rules: a host copy, a wait for the host or an allocation inside a capture invalidates it
// (end_capture returns null saying why), and a graph recorded before the weight scratch grew is stale. The CUDA
// backend's own host-side checks (engine/ops_cuda.cpp: attention's dtype and head dims, token ids) are made here too.
#include "tests/gpu/standin_ops.h"

#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>

#include "engine/base/error.h"
#include "kernels/attention_cuda.h"
#include "kernels/decode_attention_cuda.h"
#include "tests/gpu/gpu_test_util.h"

namespace qsft::test {
namespace {

std::vector<std::string>& misuses() {
  static std::vector<std::string> m;
  return m;
}

// Blocks from this size on are mapped lazily (MAP_NORESERVE): a 7B model's weights and arenas (tests/gpu/gpu_plan_test)
// cost address space, not memory, as long as nothing writes them.
constexpr size_t kMappedFrom = size_t(64) << 20;

// A GPU's free memory as the planner sees it (the CUDA backend reports cudaMemGetInfo's): an H100's 80 GiB.
constexpr size_t kStandinDeviceBytes = size_t(80) << 30;

class StandinOps final : public Ops {
 public:
  ~StandinOps() override { release(weight_scratch_); }

  Device device() const override { return Device::CUDA; }
  std::string name() const override { return "stand-in"; }

  void* alloc_bytes(size_t bytes) override {
    void* p = take(bytes, "alloc_bytes");
    note_alloc(p, bytes);
    return p;
  }
  void* alloc_host_mapped(size_t bytes) override {
    void* p = take(bytes, "alloc_host_mapped");
    note_alloc(p, bytes, MemoryKind::host_mapped);
    return p;
  }
  void free_bytes(void* p) override {  // never throws (runs from destructors)
    if (!p) return;
    const auto it = blocks_.find(uintptr_t(p));
    if (it == blocks_.end()) {
      misuses().push_back("free_bytes of a pointer this backend did not allocate");
      return;
    }
    const size_t size = it->second;
    blocks_.erase(it);
    note_free(p);
    give_back(p, size);
  }
  size_t bytes_held() const override { return Ops::bytes_held() + weight_scratch_.bytes; }
  void copy_to_device(void* dst, const void* host_src, size_t bytes) override {
    check_range("copy_to_device", "dst", dst, bytes);
    invalidate_capture("copy_to_device (a host copy)");
    std::memcpy(dst, host_src, bytes);
  }
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override {
    check_range("copy_to_host", "src", src, bytes);
    invalidate_capture("copy_to_host (a host copy)");
    std::memcpy(host_dst, src, bytes);
  }
  void synchronize() override { invalidate_capture("synchronize"); }
  size_t memory_available() const override { return kStandinDeviceBytes; }

  bool can_capture() const override { return !profiling(); }
  void begin_capture() override {
    QSFT_CHECK(can_capture() && !capturing_, "stand-in: begin_capture while profiling or capturing");
    capturing_ = true;
    capture_broken_.clear();
  }
  std::unique_ptr<Graph> end_capture(std::string* why) override {
    capturing_ = false;
    if (capture_broken_.empty()) return std::make_unique<StandinGraph>(scratch_grows_);
    if (why) *why = "the capture was invalidated by " + capture_broken_;
    return nullptr;
  }
  bool replay(Graph& g) override { return static_cast<StandinGraph&>(g).epoch == scratch_grows_; }

 protected:
  void zero_impl(Tensor& t) override { use("zero", t); }
  void copy_impl(Tensor& dst, const Tensor& src) override { use("copy", dst, src); }
  void cast_impl(const Tensor& src, Tensor& dst) override { use("cast", src, dst); }
  void gemm_impl(const Mat& A, bool, const Mat& B, bool, const Mat& C, float, float, const Tensor* bias,
                 const GemmSizes&, const void* c_src) override {
    use("gemm", A, B, C, bias);
    if (c_src) check_range("gemm", "c_src", c_src, extent(C.rows, C.cols, C.ld, C.dtype));
  }
  void dequantize_impl(const LinearWeight& W, int64_t, int64_t, Tensor& out) override {
    use("dequantize", W.w, W.q.absmax, W.q.absmax2, out);
  }
  void* weight_scratch(size_t bytes) override {
    if (bytes > weight_scratch_.bytes) {  // grows as the CUDA backend's ScratchBuffer does: graphs go stale
      release(weight_scratch_);
      weight_scratch_ = {take(bytes, "the weight scratch"), bytes};
      ++scratch_grows_;
    }
    return weight_scratch_.data;
  }
  size_t weight_scratch_limit() const override { return kCudaWeightScratchBytes; }
  void bias_grad_impl(const Tensor& dy, Tensor& db, int64_t, int64_t) override { use("bias_grad", dy, db); }
  void embedding_fwd_impl(const Tensor& ids, const Tensor& table, Tensor& out) override {
    use("embedding_fwd", ids, table, out);
  }
  void embedding_bwd_impl(const Tensor& ids, const Tensor& dout, Tensor& dtable) override {
    use("embedding_bwd", ids, dout, dtable);
    const int32_t* id = ids.i32();  // the CUDA backend reads the ids on the host and checks them
    for (int64_t t = 0; t < ids.numel(); ++t)
      QSFT_CHECK(id[t] >= 0 && id[t] < dtable.dim(0), "token id " + std::to_string(id[t]) + " outside the vocabulary");
  }
  void neftune_noise_impl(Tensor& x, float, uint64_t) override { use("neftune_noise", x); }
  void rmsnorm_fwd_impl(const Tensor& x, const Tensor& w, float, Tensor& y, Tensor& rstd, int64_t, int64_t) override {
    use("rmsnorm_fwd", x, w, y, rstd);
  }
  void rmsnorm_bwd_impl(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx, int64_t,
                        int64_t, bool) override {
    use("rmsnorm_bwd", dy, x, w, rstd, dx);
  }
  void rmsnorm_wgrad_impl(const Tensor& dy, const Tensor& x, const Tensor& rstd, Tensor& dw, int64_t,
                          int64_t) override {
    use("rmsnorm_wgrad", dy, x, rstd, dw);
  }
  void rope_impl(Tensor& x, const SeqLayout& seq, const RopeFreqs& f, bool) override {
    use("rope", x, seq.positions, seq.cu_seqlens, f.inv_freq);
  }
  void attention_fwd_impl(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& seq, Tensor& out,
                          Tensor& lse, const cpu::AttentionDims& d) override {
    use("attention_fwd", q, k, v, seq.positions, seq.cu_seqlens, out, lse);
    check_attention(q, d);
  }
  void attention_bwd_impl(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const Tensor& lse, const SeqLayout& seq, Tensor& dq, Tensor& dk, Tensor& dv,
                          const cpu::AttentionDims& d) override {
    use("attention_bwd", dout, q, k, v, out, lse, seq.positions, seq.cu_seqlens, dq, dk, dv);
    check_attention(q, d);
  }
  void decode_attention_impl(const Tensor& q, const Tensor& k_new, const Tensor& v_new, Tensor& k_cache,
                             Tensor& v_cache, const Tensor& slot, const Tensor& len, Tensor& out,
                             const cpu::DecodeAttentionDims& d) override {
    use("decode_attention", q, k_new, v_new, k_cache, v_cache, slot, len, out);
    QSFT_CHECK(d.D <= cuda::kDecodeAttentionMaxHeadDim,
               "the CUDA decode attention supports head_dim up to 256, not " + std::to_string(d.D));
  }
  void swiglu_fwd_impl(const Tensor& gate_up, Tensor& out, int64_t, int64_t) override {
    use("swiglu_fwd", gate_up, out);
  }
  void swiglu_bwd_impl(const Tensor& dout, const Tensor& gate_up, Tensor& dgate_up, int64_t, int64_t) override {
    use("swiglu_bwd", dout, gate_up, dgate_up);
  }
  void lm_head_ce_impl(const Tensor& h, const Tensor& W, const Tensor& targets, float, Tensor& loss_sum,
                       Tensor& correct, Tensor* dh, Tensor* dW, const Tensor* scratch) override {
    use("lm_head_ce", h, W, targets, loss_sum, correct, dh, dW, scratch);
  }
  void argmax_rows_impl(const Tensor& logits, Tensor& out, int64_t, int64_t) override {
    use("argmax_rows", logits, out);
  }
  void add_inplace_impl(Tensor& y, const Tensor& x) override { use("add_inplace", y, x); }
  void scale_inplace_impl(Tensor& y, float) override { use("scale_inplace", y); }
  void dropout_impl(const Tensor& x, float, uint64_t, Tensor& y, bool) override { use("dropout", x, y); }
  double sum_squares_impl(const Tensor& x) override {
    use("sum_squares", x);
    invalidate_capture("sum_squares (a wait for the host)");
    return 0.0;
  }
  void sum_squares_to_impl(const Tensor& x, Tensor& out) override { use("sum_squares", x, out); }
  void adamw_step_impl(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, const AdamWHyper&) override {
    use("adamw_step", p, g, m, v);
  }
  void adamw8bit_step_impl(Tensor& p, const Tensor& g, AdamW8bitMoments& s, const AdamWHyper&, int64_t) override {
    use("adamw8bit_step", p, g, s.m, s.v, s.absmax_m, s.absmax_v, s.map_m, s.map_v);
  }

 private:
  struct Block {
    void* data = nullptr;
    size_t bytes = 0;
  };
  struct StandinGraph final : Graph {
    explicit StandinGraph(int e) : epoch(e) {}
    int epoch;  // scratch_grows_ when recorded
  };

  // Zeroed host memory, of exactly `bytes` for the bounds checks (a view one element past its buffer is caught).
  void* take(size_t bytes, const char* what) {
    invalidate_capture(what);
    void* p = bytes < kMappedFrom
                  ? std::calloc(1, bytes ? bytes : 1)
                  : mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (!p || p == MAP_FAILED) throw std::bad_alloc();
    blocks_[uintptr_t(p)] = bytes;
    return p;
  }
  static void give_back(void* p, size_t bytes) { bytes < kMappedFrom ? std::free(p) : (void)munmap(p, bytes); }
  void release(Block& b) {
    if (!b.data) return;
    blocks_.erase(uintptr_t(b.data));
    give_back(b.data, b.bytes);
    b = {};
  }
  // What the CUDA attention takes (engine/ops_cuda.cpp, cuda::attention_supports_head_dim).
  static void check_attention(const Tensor& q, const cpu::AttentionDims& d) {
    QSFT_CHECK(q.dtype == DType::BF16, std::string("the CUDA attention takes BF16, not ") + dtype_name(q.dtype));
    QSFT_CHECK(d.D >= 8 && d.D <= cuda::kAttentionMaxHeadDim && d.D % 8 == 0,
               "the CUDA attention supports head_dim a multiple of 8 from 8 to " +
                   std::to_string(cuda::kAttentionMaxHeadDim) + ", not " + std::to_string(d.D));
  }
  void invalidate_capture(const std::string& what) {
    if (capturing_ && capture_broken_.empty()) capture_broken_ = what;
  }

  // Bytes from the first element to one past the last of `rows` rows of `cols` elements, `ld` apart.
  static size_t extent(int64_t rows, int64_t cols, int64_t ld, DType dt) {
    return rows <= 0 || cols <= 0 ? 0 : size_t((rows - 1) * ld + cols) * dtype_size(dt);
  }
  // [p, p + bytes) inside one live allocation, else a misuse: recorded and thrown.
  void check_range(const char* op, const std::string& what, const void* p, size_t bytes) const {
    const auto it = blocks_.upper_bound(uintptr_t(p));
    if (it != blocks_.begin()) {
      const auto& [base, size] = *std::prev(it);
      if (uintptr_t(p) + bytes <= base + size) return;
    }
    const std::string m = std::string(op) + ": " + what + " (" + std::to_string(bytes) +
                          " bytes) is not inside one allocation of this backend (a host pointer, a freed buffer, or "
                          "a view past the end of its buffer): a kernel would fault or corrupt memory";
    misuses().push_back(m);
    throw std::logic_error("stand-in misuse: " + m);
  }
  void check(const char* op, int i, const Tensor& t) const {
    if (t.empty() || t.numel() == 0) return;
    const int64_t rows = t.ndim ? t.dim(0) : 1;
    check_range(op, "operand " + std::to_string(i) + " " + t.shape_str(), t.data,
                extent(rows, t.ndim ? t.row_elems() : 1, t.stride0(), t.dtype));
  }
  void check(const char* op, int i, const Tensor* t) const {
    if (t) check(op, i, *t);
  }
  void check(const char* op, int i, const Mat& m) const {
    if (m.rows && m.cols)
      check_range(op, "matrix operand " + std::to_string(i), m.data, extent(m.rows, m.cols, m.ld, m.dtype));
  }
  template <class... Operands>
  void use(const char* op, const Operands&... operands) const {
    int i = 0;
    (check(op, i++, operands), ...);
  }

  std::map<uintptr_t, size_t> blocks_;  // live allocations (both kinds and the scratch): base -> bytes
  Block weight_scratch_;
  int scratch_grows_ = 0;
  bool capturing_ = false;
  std::string capture_broken_;  // what invalidated the capture in progress ("" = nothing)
};

}  // namespace

bool standin_mode() {
  static const bool on = env_flag("QSFT_GPU_STANDIN") && !gpu_required() && !cuda_available();
  return on;
}

std::unique_ptr<Ops> make_standin_ops() { return std::make_unique<StandinOps>(); }

std::vector<std::string> take_standin_misuses() { return std::exchange(misuses(), {}); }

}  // namespace qsft::test
