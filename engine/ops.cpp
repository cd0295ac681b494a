// The public Ops methods: each checks its arguments once (dtype, shape, placement, packing), derives the sizes
// and calls the backend's *_impl inside a profiling scope. A failed check is a caller's bug: QSFT_CHECK throws
// std::logic_error naming the argument, what it is and what was expected. Activations and frozen weights are F32
// or BF16 here; a backend refuses a dtype it does not compute in (the CPU one: F32 only).
#include "engine/ops.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <utility>

#include "engine/base/error.h"

namespace qsft {

namespace {

std::string dims(int64_t a, int64_t b) { return "[" + std::to_string(a) + ", " + std::to_string(b) + "]"; }

// The checks, for a backend on `device`.
struct Expect {
  Device device;

  // On this device, with memory unless empty; packed unless `strided_ok`.
  void placed(const Tensor& t, const char* name, bool strided_ok = false) const {
    QSFT_CHECK(t.device == device,
               std::string(name) + " is not a " + (device == Device::CPU ? "CPU" : "CUDA") + " tensor");
    QSFT_CHECK(t.data || t.numel() == 0, std::string(name) + " has no memory");
    QSFT_CHECK(strided_ok || t.contiguous(), std::string(name) + " must be packed, not a strided view");
  }
  void dtype(const Tensor& t, DType dt, const char* name, bool strided_ok = false) const {
    placed(t, name, strided_ok);
    QSFT_CHECK(t.dtype == dt, std::string(name) + " is " + dtype_name(t.dtype) + ", expected " + dtype_name(dt));
  }
  // An activation or frozen weight: F32 or BF16.
  void floating(const Tensor& t, const char* name, bool strided_ok = false) const {
    placed(t, name, strided_ok);
    QSFT_CHECK(t.dtype == DType::F32 || t.dtype == DType::BF16,
               std::string(name) + " is " + dtype_name(t.dtype) + ", expected F32 or BF16");
  }
  // n elements of dtype (any shape).
  void vector(const Tensor& t, DType dt, int64_t n, const char* name) const {
    dtype(t, dt, name);
    QSFT_CHECK(t.numel() == n,
               std::string(name) + " is " + t.shape_str() + ", expected " + std::to_string(n) + " elements");
  }
  // [rows, cols]: `rows` rows of `cols` elements (e.g. [T, n, D] as [T, n*D]), or a packed shape with the same
  // elements and cols as its last dimension; a strided view (rows of a wider matrix) when allowed.
  void matrix(const Tensor& t, DType dt, int64_t rows, int64_t cols, const char* name, bool strided_ok = false) const {
    dtype(t, dt, name, strided_ok);
    const bool by_rows = t.ndim >= 1 && t.dim(0) == rows && t.row_elems() == cols;
    const bool flat = t.contiguous() && t.ndim >= 1 && t.dim(-1) == cols && t.numel() == rows * cols;
    QSFT_CHECK(by_rows || flat, std::string(name) + " is " + t.shape_str() + ", expected " + dims(rows, cols));
  }
  // R rows of H for a norm: packed (a matrix [R, H] as `matrix` takes it), or a strided view whose token rows hold
  // whole rows of H (a column slice [T, H] or a head view [T, heads, H], T heads = R).
  void norm_rows(const Tensor& t, DType dt, int64_t R, int64_t H, const char* name) const {
    if (t.contiguous()) return matrix(t, dt, R, H, name);
    dtype(t, dt, name, true);
    QSFT_CHECK(t.dim(-1) == H && t.numel() == R * H,
               std::string(name) + " is " + t.shape_str() + ", expected " + dims(R, H) + " rows of " +
                   std::to_string(H) + " (a strided view: [T, heads, " + std::to_string(H) + "])");
  }
  // [T, heads, D] exactly; a strided head view (token rows further apart, the heads packed) when allowed.
  void heads(const Tensor& t, DType dt, int64_t T, int64_t heads, int64_t D, const char* name,
             bool strided_ok = false) const {
    dtype(t, dt, name, strided_ok);
    QSFT_CHECK(t.ndim == 3 && t.dim(0) == T && t.dim(1) == heads && t.dim(2) == D,
               std::string(name) + " is " + t.shape_str() + ", expected [" + std::to_string(T) + ", " +
                   std::to_string(heads) + ", " + std::to_string(D) + "]");
  }
  // positions I32 [T], cu_seqlens I32 [S+1]. Host values are checked too (non-decreasing from 0 to T); device
  // values stay on the device, where the kernels trust them.
  void layout(const SeqLayout& seq, int64_t T) const {
    vector(seq.positions, DType::I32, T, "positions");
    vector(seq.cu_seqlens, DType::I32, int64_t(seq.num_seqs) + 1, "cu_seqlens");
    if (device == Device::CPU) {
      const int32_t* cu = seq.cu_seqlens.i32();
      QSFT_CHECK(cu[0] == 0 && cu[seq.num_seqs] == T, "cu_seqlens must run from 0 to T = " + std::to_string(T));
      for (int s = 0; s < seq.num_seqs; ++s) QSFT_CHECK(cu[s] <= cu[s + 1], "cu_seqlens must not decrease");
    } else {
      QSFT_CHECK(seq.num_seqs >= 1 || T == 0, "a layout with tokens needs at least one sequence");
    }
  }
  // x [T, n, D] with D even (may be a strided head view), its layout, inv_freq F32 [D/2].
  void rope(const Tensor& x, const SeqLayout& seq, const RopeFreqs& f, const char* name) const {
    floating(x, name, true);
    QSFT_CHECK(x.ndim == 3 && x.dim(2) % 2 == 0,
               std::string(name) + " is " + x.shape_str() + ", expected [T, n, D] with D even");
    layout(seq, x.dim(0));
    vector(f.inv_freq, DType::F32, x.dim(2) / 2, "rope inv_freq");
  }
  // A frozen Linear's weight: F32 or BF16 [out, in], or 4-bit (Quant4).
  void linear_weight(const LinearWeight& W) const {
    if (W.quantized()) return quant4(W);
    floating(W.w, "linear W");
    QSFT_CHECK(W.w.ndim == 2, "linear W is " + W.w.shape_str() + ", expected [out, in]");
  }
  // Codes U8 [out, in/2]; 1 to 3 parts whose rows sum to out, 64 dividing each part's elements; absmax F32 (U8 when
  // double-quantized) of out*in/64 elements; absmax2 F32 with ceil(part blocks / 256) per part.
  void quant4(const LinearWeight& W) const {
    const Quant4& q = W.q;
    dtype(W.w, DType::U8, "linear W (4-bit codes)");
    QSFT_CHECK(W.w.ndim == 2, "linear W (4-bit codes) is " + W.w.shape_str() + ", expected [out, in/2]");
    QSFT_CHECK(q.compute == DType::F32 || q.compute == DType::BF16, "linear W: compute dtype must be F32 or BF16");
    QSFT_CHECK(q.parts >= 1 && q.parts <= cpu::kQuant4MaxParts && W.part_row0(q.parts) == W.out(),
               "linear W: bad 4-bit parts");
    for (int p = 0; p < q.parts; ++p)
      QSFT_CHECK(
          q.part_rows[p] * W.in() % 64 == 0,
          "linear W: a 4-bit part of " + std::to_string(q.part_rows[p] * W.in()) + " elements, not blocks of 64");
    vector(q.absmax, q.double_quant() ? DType::U8 : DType::F32, W.out() * W.in() / 64, "linear W absmax");
    if (q.double_quant()) vector(q.absmax2, DType::F32, W.absmax2_of(q.parts), "linear W absmax2");
  }
  // A GEMM operand: F32 or BF16, a valid view.
  static void view(const Mat& m, const char* name) {
    QSFT_CHECK(m.dtype == DType::F32 || m.dtype == DType::BF16,
               std::string(name) + " is " + dtype_name(m.dtype) + ", expected F32 or BF16");
    QSFT_CHECK(m.ld >= m.cols && (m.data || m.rows * m.cols == 0), std::string(name) + ": bad view");
  }
  // q [T, n, D], k and v [T, nkv, D] of q's dtype with n a multiple of nkv (each may be a strided head view), and
  // their layout; the sizes and row strides.
  cpu::AttentionDims attention(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& seq) const {
    QSFT_CHECK(q.ndim == 3 && k.ndim == 3, "attention q, k must be [T, heads, D]");
    const cpu::AttentionDims d{q.dim(0), q.dim(1), k.dim(1), q.dim(2), q.stride0(), k.stride0(), v.stride0()};
    QSFT_CHECK(d.nkv > 0 && d.n % d.nkv == 0, "query heads must be a multiple of kv heads");
    floating(q, "attention q", true);
    heads(q, q.dtype, d.T, d.n, d.D, "attention q", true);
    heads(k, q.dtype, d.T, d.nkv, d.D, "attention k", true);
    heads(v, q.dtype, d.T, d.nkv, d.D, "attention v", true);
    layout(seq, d.T);
    return d;
  }
  // A gradient of an attention input: its shape and its row stride (`ld`, of the input).
  void attention_grad(const Tensor& t, DType dt, int64_t T, int64_t heads_, int64_t D, int64_t ld,
                      const char* name) const {
    this->heads(t, dt, T, heads_, D, name, true);
    QSFT_CHECK(t.stride0() == ld, std::string(name) + " has row stride " + std::to_string(t.stride0()) +
                                      ", expected its input's " + std::to_string(ld));
  }
  // attention_fwd's outputs: out like q, lse F32 [n, T].
  void attention_outputs(const Tensor& out, const Tensor& lse, const cpu::AttentionDims& d, DType dt) const {
    heads(out, dt, d.T, d.n, d.D, "attention out");
    matrix(lse, DType::F32, d.n, d.T, "attention lse");
  }
};

}  // namespace

const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::dense: return "dense";
    case WeightFormat::nf4: return "nf4";
    case WeightFormat::fp4: return "fp4";
  }
  return "?";
}

// Brackets one public op (its family's slot) or the GEMM work inside it (its shape's slot) with the backend's
// profiling hooks (nothing when not profiling).
class Ops::Scope {
 public:
  Scope(Ops& ops, OpFamily f) : ops_(ops.profiling_ ? &ops : nullptr) {
    if (ops_) begin(ops_->profile_.family_slot(f));
  }
  Scope(Ops& ops, const GemmWork& w) : ops_(ops.profiling_ ? &ops : nullptr) {
    if (ops_) begin(ops_->profile_.shape_slot(w));
  }
  ~Scope() {
    if (ops_) ops_->profile_end(slot_);
  }

 private:
  void begin(int slot) {
    slot_ = slot;
    ops_->profile_begin(slot);
  }
  Ops* ops_;
  int slot_ = 0;
};

Ops::Ops() {
  const char* p = std::getenv("QSFT_PROFILE");
  profiling_ = p && *p && std::string(p) != "0";
}

void Ops::begin_capture() { throw std::logic_error(name() + " backend cannot record graphs"); }
std::unique_ptr<Ops::Graph> Ops::end_capture(std::string* why) {
  if (why) *why = name() + " backend cannot record graphs";
  return nullptr;
}
bool Ops::replay(Graph&) { return false; }

static double host_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
void Ops::profile_begin(int slot) { host_open_.emplace_back(slot, host_ms()); }
void Ops::profile_end(int slot) {
  if (host_open_.empty() || host_open_.back().first != slot) return;  // unmatched (an op threw): dropped
  if (size_t(slot) >= host_ms_.size()) host_ms_.resize(size_t(slot) + 1, 0.0);
  host_ms_[size_t(slot)] += host_ms() - host_open_.back().second;
  host_open_.pop_back();
}
void Ops::profile_collect(std::vector<double>& ms) { ms = host_ms_; }
void Ops::profile_reset() {
  std::vector<double> ms;
  profile_collect(ms);
  profile_.reset(ms);
}

std::string Ops::profile_report() {
  std::vector<double> ms;
  profile_collect(ms);
  return profile_.report(ms);
}

// ---- memory ----

void Ops::zero(Tensor& t) {
  Scope s(*this, OpFamily::copy);
  Expect{device()}.placed(t, "zero t");
  if (t.numel() > 0) zero_impl(t);
}

void Ops::copy(Tensor& dst, const Tensor& src) {
  Scope s(*this, OpFamily::copy);
  const Expect e{device()};
  if (src.contiguous() && dst.contiguous()) {
    e.placed(src, "copy src");
    e.vector(dst, src.dtype, src.numel(), "copy dst");
  } else {  // rows of row_elems() elements, either side a strided view
    e.placed(src, "copy src", true);
    e.matrix(dst, src.dtype, src.ndim ? src.dim(0) : 0, src.row_elems(), "copy dst", true);
  }
  if (src.numel() > 0) copy_impl(dst, src);
}

void Ops::cast(const Tensor& src, Tensor& dst) {
  Scope s(*this, OpFamily::copy);
  const Expect e{device()};
  e.dtype(src, DType::F32, "cast src");
  e.floating(dst, "cast dst");
  e.vector(dst, dst.dtype, src.numel(), "cast dst");
  if (src.numel() == 0) return;
  if (dst.dtype == DType::F32) {
    copy_impl(dst, src);
  } else {
    cast_impl(src, dst);
  }
}

// ---- GEMM and frozen Linear layers ----

// For the profile's GEMM shapes: "gemm" with op(A)'s and op(B)'s forms (N or T), "+=" when C is accumulated.
static const char* gemm_op_name(bool transA, bool transB, bool accumulate) {
  static const char* const names[8] = {"gemm NN",    "gemm NT",    "gemm TN",    "gemm TT",
                                       "gemm NN +=", "gemm NT +=", "gemm TN +=", "gemm TT +="};
  return names[int(transA) * 2 + int(transB) + 4 * int(accumulate)];
}
static double rows_bytes(int64_t rows, int64_t cols, DType dt) {
  return double(rows) * double(cols) * double(dtype_size(dt));
}
static double mat_bytes(const Mat& m) { return rows_bytes(m.rows, m.cols, m.dtype); }

void Ops::gemm(const Mat& A, bool transA, const Mat& B, bool transB, const Mat& C, float alpha, float beta,
               const Tensor* bias) {
  Scope s(*this, OpFamily::gemm);
  Expect::view(A, "gemm A");
  Expect::view(B, "gemm B");
  Expect::view(C, "gemm C");
  const int64_t M = transA ? A.cols : A.rows, K = transA ? A.rows : A.cols;
  const int64_t N = transB ? B.rows : B.cols, K_b = transB ? B.cols : B.rows;
  QSFT_CHECK(K == K_b && C.rows == M && C.cols == N,
             "gemm shapes: op(A) " + dims(M, K) + ", op(B) " + dims(K_b, N) + ", C " + dims(C.rows, C.cols));
  if (bias) Expect{device()}.vector(*bias, C.dtype, N, "gemm bias");
  Scope shape(*this, GemmWork{gemm_op_name(transA, transB, beta != 0.0f), M, N, K,
                              mat_bytes(A) + mat_bytes(B) + mat_bytes(C) * (beta != 0.0f ? 2 : 1)});
  gemm_impl(A, transA, B, transB, C, alpha, beta, bias, {M, N, K}, nullptr);
}

void Ops::linear(const Tensor& x, const LinearWeight& W, Tensor& y, const Tensor* residual) {
  Scope s(*this, OpFamily::linear);
  const Expect e{device()};
  e.linear_weight(W);
  const int64_t T = x.ndim ? x.dim(0) : 0;
  e.matrix(x, W.dtype(), T, W.in(), "linear x", true);
  e.matrix(y, W.dtype(), T, W.out(), "linear y", true);
  if (!W.bias.empty()) e.vector(W.bias, W.dtype(), W.out(), "linear bias");
  if (residual) e.matrix(*residual, W.dtype(), T, W.out(), "linear residual", true);
  const double y_bytes = rows_bytes(T, W.out(), W.dtype());
  const char* op = !residual ? "linear" : residual->data == y.data ? "linear +=" : "linear +residual";
  Scope shape(*this, GemmWork{op, T, W.out(), W.in(),
                              rows_bytes(T, W.in(), W.dtype()) + double(W.w.nbytes()) + y_bytes * (residual ? 2 : 1)});
  linear_impl(x, W, y, residual);
}

void Ops::linear_dgrad(const Tensor& dy, const LinearWeight& W, Tensor& dx, bool accumulate) {
  Scope s(*this, OpFamily::linear);
  const Expect e{device()};
  e.linear_weight(W);
  const int64_t T = dy.ndim ? dy.dim(0) : 0;
  e.matrix(dy, W.dtype(), T, W.out(), "linear dy", true);
  e.matrix(dx, W.dtype(), T, W.in(), "linear dx", true);
  const double dx_bytes = rows_bytes(T, W.in(), W.dtype());
  Scope shape(*this,
              GemmWork{accumulate ? "linear_dgrad +=" : "linear_dgrad", T, W.in(), W.out(),
                       rows_bytes(T, W.out(), W.dtype()) + double(W.w.nbytes()) + dx_bytes * (accumulate ? 2 : 1)});
  linear_dgrad_impl(dy, W, dx, accumulate);
}

void Ops::dequantize(const LinearWeight& W, Tensor& out) {
  Scope s(*this, OpFamily::linear);
  const Expect e{device()};
  e.linear_weight(W);
  e.matrix(out, W.dtype(), W.out(), W.in(), "dequantize out");
  if (W.quantized()) {
    dequantize_impl(W, 0, W.out(), out);
  } else {
    copy_impl(out, W.w);
  }
}

int64_t Ops::quant_chunk_rows(int64_t out, int64_t in, size_t elem_size, size_t limit) {
  const int64_t rows = int64_t(std::min<size_t>(limit / (size_t(in) * elem_size), size_t(out)));
  return rows >= out ? out : std::max<int64_t>(64, rows / 64 * 64);  // whole blocks of 64 in each chunk
}

int64_t Ops::chunk_rows(const LinearWeight& W) const {
  if (!W.quantized()) return W.out();
  return quant_chunk_rows(W.out(), W.in(), dtype_size(W.dtype()), weight_scratch_limit());
}

Tensor Ops::weight_rows(const LinearWeight& W, int64_t row0, int64_t row1) {
  if (!W.quantized()) return W.w.rows(row0, row1);
  const int64_t rows = row1 - row0;
  Tensor w(weight_scratch(size_t(rows * W.in()) * dtype_size(W.dtype())), W.dtype(), {rows, W.in()}, device());
  dequantize_impl(W, row0, row1, w);
  return w;
}

namespace {
Mat columns(Mat m, int64_t c0, int64_t c1) {  // columns [c0, c1) of m
  m.data = static_cast<char*>(m.data) + size_t(c0) * dtype_size(m.dtype);
  m.cols = c1 - c0;
  return m;
}
}  // namespace

// y = x W^T + b (+ residual) over the backend's GEMM, in chunks of W's rows (one for a dense W: y's columns
// [r0, r1) from rows [r0, r1)). The residual is the GEMM's beta = 1 source, read in place (no copy into y).
void Ops::linear_impl(const Tensor& x, const LinearWeight& W, Tensor& y, const Tensor* residual) {
  const int64_t T = x.dim(0), chunk = chunk_rows(W);
  if (residual) QSFT_CHECK(residual->stride0() == y.stride0(), "a linear residual needs y's row stride");
  for (int64_t r0 = 0; r0 < W.out(); r0 += chunk) {
    const int64_t r1 = std::min(W.out(), r0 + chunk);
    const Tensor w = weight_rows(W, r0, r1), bias = W.bias.empty() ? Tensor() : W.bias.rows(r0, r1);
    const void* src = residual ? columns(Mat::of(*residual), r0, r1).data : nullptr;
    gemm_impl(Mat::of(x), false, Mat::of(w), true, columns(Mat::of(y), r0, r1), 1.0f, residual ? 1.0f : 0.0f,
              W.bias.empty() ? nullptr : &bias, {T, r1 - r0, W.in()}, src);
  }
}

// dx = dy W = sum over the chunks of W's rows of dy[:, r0:r1] W[r0:r1, :].
void Ops::linear_dgrad_impl(const Tensor& dy, const LinearWeight& W, Tensor& dx, bool accumulate) {
  const int64_t chunk = chunk_rows(W);
  for (int64_t r0 = 0; r0 < W.out(); r0 += chunk) {
    const int64_t r1 = std::min(W.out(), r0 + chunk);
    const Tensor w = weight_rows(W, r0, r1);
    gemm_impl(columns(Mat::of(dy), r0, r1), false, Mat::of(w), false, Mat::of(dx), 1.0f,
              accumulate || r0 > 0 ? 1.0f : 0.0f, nullptr, {dy.dim(0), W.in(), r1 - r0}, nullptr);
  }
}

// dW.w += dy^T x over the backend's GEMM (F32 output), then the bias: db += sum_t dy.
void Ops::linear_wgrad_impl(const Tensor& dy, const Tensor& x, const LinearWeight& dW) {
  const int64_t T = dy.dim(0);
  gemm_impl(Mat::of(dy), true, Mat::of(x), false, Mat::of(dW.w), 1.0f, 1.0f, nullptr, {dW.out(), dW.in(), T}, nullptr);
  if (!dW.bias.empty()) {
    Tensor db = dW.bias;
    bias_grad_impl(dy, db, T, dW.out());
  }
}

void Ops::linear_wgrad(const Tensor& dy, const Tensor& x, const LinearWeight& dW) {
  Scope s(*this, OpFamily::linear);
  const Expect e{device()};
  QSFT_CHECK(dW.w.ndim == 2, "linear dW is " + dW.w.shape_str() + ", expected [out, in]");
  e.dtype(dW.w, DType::F32, "linear dW");
  const int64_t T = dy.ndim ? dy.dim(0) : 0;
  e.floating(dy, "linear_wgrad dy", true);
  e.matrix(dy, dy.dtype, T, dW.out(), "linear_wgrad dy", true);
  e.matrix(x, dy.dtype, T, dW.in(), "linear_wgrad x", true);
  if (!dW.bias.empty()) e.vector(dW.bias, DType::F32, dW.out(), "linear dbias");
  Scope shape(*this, GemmWork{"linear_wgrad +=", dW.out(), dW.in(), T,
                              rows_bytes(T, dW.out(), dy.dtype) + rows_bytes(T, dW.in(), dy.dtype) +
                                  2 * rows_bytes(dW.out(), dW.in(), DType::F32)});
  linear_wgrad_impl(dy, x, dW);
}

void Ops::embedding_bwd(const Tensor& ids, const Tensor& dout, Tensor& dtable) {
  Scope s(*this, OpFamily::embedding);
  const Expect e{device()};
  const int64_t T = ids.numel(), V = dtable.dim(0), H = dtable.dim(-1);
  e.vector(ids, DType::I32, T, "ids");
  e.matrix(dtable, DType::F32, V, H, "embedding dtable");
  e.floating(dout, "embedding dout");
  e.matrix(dout, dout.dtype, T, H, "embedding dout");
  embedding_bwd_impl(ids, dout, dtable);
}

void Ops::rmsnorm_wgrad(const Tensor& dy, const Tensor& x, const Tensor& rstd, Tensor& dw) {
  Scope s(*this, OpFamily::norm);
  const Expect e{device()};
  const int64_t H = dw.numel(), T = H ? x.numel() / H : 0;
  e.dtype(dw, DType::F32, "rmsnorm dw");
  e.floating(x, "rmsnorm x", true);
  e.norm_rows(x, x.dtype, T, H, "rmsnorm x");
  e.norm_rows(dy, x.dtype, T, H, "rmsnorm dy");
  e.vector(rstd, DType::F32, T, "rmsnorm rstd");
  rmsnorm_wgrad_impl(dy, x, rstd, dw, T, H);
}
void Ops::dequantize_impl(const LinearWeight& W, int64_t, int64_t, Tensor&) {
  throw std::logic_error("the " + name() + " backend has no " + weight_format_name(W.q.format) + " weights");
}
void Ops::note_alloc(const void* p, size_t bytes, MemoryKind kind) {
  allocations_[p] = {bytes, kind};
  allocated_bytes_[int(kind)] += bytes;
}

MemoryKind Ops::note_free(const void* p) {
  const auto it = allocations_.find(p);
  if (it == allocations_.end()) return MemoryKind::device;
  const Allocation a = it->second;
  allocated_bytes_[int(a.kind)] -= a.bytes;
  allocations_.erase(it);
  return a.kind;
}

void* Ops::weight_scratch(size_t) { throw std::logic_error("the " + name() + " backend has no weight scratch"); }

// ---- embedding, norms, RoPE ----

void Ops::embedding_fwd(const Tensor& ids, const Tensor& table, Tensor& out) {
  Scope s(*this, OpFamily::embedding);
  const Expect e{device()};
  const int64_t T = ids.numel(), V = table.dim(0), H = table.dim(-1);
  e.vector(ids, DType::I32, T, "ids");
  e.floating(table, "embedding table");
  e.matrix(table, table.dtype, V, H, "embedding table");
  e.matrix(out, table.dtype, T, H, "embedding out");
  embedding_fwd_impl(ids, table, out);
}

void Ops::neftune_noise(Tensor& x, float scale, uint64_t seed) {
  Scope s(*this, OpFamily::embedding);
  Expect{device()}.floating(x, "neftune x");
  neftune_noise_impl(x, scale, seed);
}

void Ops::rmsnorm_fwd(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd) {
  Scope s(*this, OpFamily::norm);
  const Expect e{device()};
  const int64_t H = w.numel(), T = H ? x.numel() / H : 0;
  e.floating(w, "rmsnorm w");
  e.norm_rows(x, w.dtype, T, H, "rmsnorm x");
  e.norm_rows(y, w.dtype, T, H, "rmsnorm y");
  e.vector(rstd, DType::F32, T, "rmsnorm rstd");
  rmsnorm_fwd_impl(x, w, eps, y, rstd, T, H);
}

void Ops::rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx,
                      bool accumulate) {
  Scope s(*this, OpFamily::norm);
  const Expect e{device()};
  const int64_t H = w.numel(), T = H ? x.numel() / H : 0;
  e.floating(w, "rmsnorm w");
  e.norm_rows(x, w.dtype, T, H, "rmsnorm x");
  e.norm_rows(dy, w.dtype, T, H, "rmsnorm dy");
  e.norm_rows(dx, w.dtype, T, H, "rmsnorm dx");
  e.vector(rstd, DType::F32, T, "rmsnorm rstd");
  rmsnorm_bwd_impl(dy, x, w, rstd, dx, T, H, accumulate);
}

void Ops::rope_fwd(Tensor& x, const SeqLayout& seq, const RopeFreqs& f) {
  Scope s(*this, OpFamily::rope);
  Expect{device()}.rope(x, seq, f, "rope x");
  rope_impl(x, seq, f, false);
}

void Ops::rope_bwd(Tensor& dx, const SeqLayout& seq, const RopeFreqs& f) {
  Scope s(*this, OpFamily::rope);
  Expect{device()}.rope(dx, seq, f, "rope dx");
  rope_impl(dx, seq, f, true);
}

// ---- attention, SwiGLU, LM head ----

void Ops::attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& seq, Tensor& out,
                        Tensor& lse) {
  Scope s(*this, OpFamily::attention);
  const Expect e{device()};
  const cpu::AttentionDims d = e.attention(q, k, v, seq);
  e.attention_outputs(out, lse, d, q.dtype);
  attention_fwd_impl(q, k, v, seq, out, lse, d);
}

void Ops::attention_bwd(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& lse, const SeqLayout& seq, Tensor& dq, Tensor& dk, Tensor& dv) {
  Scope s(*this, OpFamily::attention);
  const Expect e{device()};
  const cpu::AttentionDims d = e.attention(q, k, v, seq);
  e.attention_outputs(out, lse, d, q.dtype);
  e.heads(dout, q.dtype, d.T, d.n, d.D, "attention dout");
  e.attention_grad(dq, q.dtype, d.T, d.n, d.D, d.q_stride(), "attention dq");
  e.attention_grad(dk, q.dtype, d.T, d.nkv, d.D, d.k_stride(), "attention dk");
  e.attention_grad(dv, q.dtype, d.T, d.nkv, d.D, d.v_stride(), "attention dv");
  attention_bwd_impl(dout, q, k, v, out, lse, seq, dq, dk, dv, d);
}

void Ops::decode_attention(const Tensor& q, const Tensor& k_new, const Tensor& v_new, Tensor& k_cache, Tensor& v_cache,
                           const Tensor& slot, const Tensor& len, Tensor& out) {
  Scope s(*this, OpFamily::attention);
  const Expect e{device()};
  QSFT_CHECK(q.ndim == 3 && k_cache.ndim == 4, "decode attention q must be [B, n, D], the caches [slots, S, nkv, D]");
  const cpu::DecodeAttentionDims d{q.dim(0), q.dim(1), k_cache.dim(2), q.dim(2), k_cache.dim(0), k_cache.dim(1)};
  QSFT_CHECK(d.nkv > 0 && d.n % d.nkv == 0, "query heads must be a multiple of kv heads");
  e.floating(q, "decode attention q");
  e.heads(k_new, q.dtype, d.B, d.nkv, d.D, "decode attention k_new");
  e.heads(v_new, q.dtype, d.B, d.nkv, d.D, "decode attention v_new");
  e.heads(out, q.dtype, d.B, d.n, d.D, "decode attention out");
  for (const Tensor* c : {&k_cache, &v_cache}) {
    e.dtype(*c, q.dtype, "decode attention cache");
    QSFT_CHECK(c->ndim == 4 && c->dim(0) == d.slots && c->dim(1) == d.S && c->dim(2) == d.nkv && c->dim(3) == d.D,
               "decode attention caches are " + k_cache.shape_str() + " and " + v_cache.shape_str() +
                   ", expected the same [slots, S, nkv, D] with D = " + std::to_string(d.D));
  }
  e.vector(slot, DType::I32, d.B, "decode attention slot");
  e.vector(len, DType::I32, d.B, "decode attention len");
  if (device() == Device::CPU)  // device values stay on the device, where the kernels trust them
    for (int64_t b = 0; b < d.B; ++b)
      QSFT_CHECK(slot.i32()[b] >= 0 && slot.i32()[b] < d.slots && len.i32()[b] >= 1 && len.i32()[b] <= d.S,
                 "decode attention row " + std::to_string(b) + ": slot " + std::to_string(slot.i32()[b]) + ", len " +
                     std::to_string(len.i32()[b]) + " outside the cache [" + std::to_string(d.slots) + ", " +
                     std::to_string(d.S) + "]");
  decode_attention_impl(q, k_new, v_new, k_cache, v_cache, slot, len, out, d);
}

void Ops::swiglu_fwd(const Tensor& gate_up, Tensor& out) {
  Scope s(*this, OpFamily::swiglu);
  const Expect e{device()};
  const int64_t I = out.dim(-1), T = I ? out.numel() / I : 0;
  e.floating(gate_up, "swiglu gate_up");
  e.matrix(gate_up, gate_up.dtype, T, 2 * I, "swiglu gate_up");
  e.matrix(out, gate_up.dtype, T, I, "swiglu out");
  swiglu_fwd_impl(gate_up, out, T, I);
}

void Ops::swiglu_bwd(const Tensor& dout, const Tensor& gate_up, Tensor& dgate_up) {
  Scope s(*this, OpFamily::swiglu);
  const Expect e{device()};
  const int64_t I = dout.dim(-1), T = I ? dout.numel() / I : 0;
  e.floating(dout, "swiglu dout");
  e.matrix(dout, dout.dtype, T, I, "swiglu dout");
  e.matrix(gate_up, dout.dtype, T, 2 * I, "swiglu gate_up");
  e.matrix(dgate_up, dout.dtype, T, 2 * I, "swiglu dgate_up");
  swiglu_bwd_impl(dout, gate_up, dgate_up, T, I);
}

void Ops::argmax_rows(const Tensor& logits, Tensor& out) {
  Scope s(*this, OpFamily::lm_head_ce);
  const Expect e{device()};
  const int64_t R = out.numel(), V = logits.dim(-1);
  QSFT_CHECK(V >= 1, "argmax_rows: rows of no values");
  e.matrix(logits, DType::F32, R, V, "argmax_rows logits");
  e.vector(out, DType::I32, R, "argmax_rows out");
  argmax_rows_impl(logits, out, R, V);
}

void Ops::lm_head_ce(const Tensor& h, const Tensor& W, const Tensor& targets, float grad_scale, Tensor& loss_sum,
                     Tensor& correct, Tensor* dh, Tensor* dW, const Tensor* scratch) {
  Scope s(*this, OpFamily::lm_head_ce);
  const Expect e{device()};
  const int64_t V = W.dim(0), H = W.dim(-1), T = targets.numel();
  e.floating(W, "lm_head W");
  e.matrix(W, W.dtype, V, H, "lm_head W");
  e.matrix(h, W.dtype, T, H, "lm_head h");
  e.vector(targets, DType::I32, T, "targets");
  e.vector(loss_sum, DType::F32, 1, "loss_sum");
  e.vector(correct, DType::I32, 1, "correct");
  const bool backward = dh && !dh->empty();
  if (backward) e.matrix(*dh, W.dtype, T, H, "lm_head dh");
  if (dW) {
    QSFT_CHECK(backward, "lm_head dW needs dh (the backward)");
    e.matrix(*dW, DType::F32, V, H, "lm_head dW");
  }
  if (scratch && !scratch->empty()) e.placed(*scratch, "lm_head scratch");
  lm_head_ce_impl(h, W, targets, grad_scale, loss_sum, correct, backward ? dh : nullptr, dW, scratch);
}

// ---- elementwise, reductions, optimizer ----

void Ops::add_inplace(Tensor& y, const Tensor& x) {
  Scope s(*this, OpFamily::elementwise);
  const Expect e{device()};
  e.floating(y, "add y");
  e.vector(x, y.dtype, y.numel(), "add x");
  add_inplace_impl(y, x);
}

void Ops::scale_inplace(Tensor& y, float factor) {
  Scope s(*this, OpFamily::elementwise);
  Expect{device()}.floating(y, "scale y");
  scale_inplace_impl(y, factor);
}

void Ops::dropout(const Tensor& x, float p, uint64_t seed, Tensor& y) {
  Scope s(*this, OpFamily::dropout);
  const Expect e{device()};
  e.floating(x, "dropout x");
  e.vector(y, x.dtype, x.numel(), "dropout y");
  QSFT_CHECK(p >= 0.0f && p < 1.0f, "dropout p must be in [0, 1), got " + std::to_string(p));
  dropout_impl(x, p, seed, y, false);
}

void Ops::dropout_add(Tensor& y, const Tensor& x, float p, uint64_t seed) {
  Scope s(*this, OpFamily::dropout);
  const Expect e{device()};
  e.floating(y, "dropout_add y");
  e.vector(x, y.dtype, y.numel(), "dropout_add x");
  QSFT_CHECK(x.data != y.data, "dropout_add: x and y must be distinct");
  QSFT_CHECK(p >= 0.0f && p < 1.0f, "dropout p must be in [0, 1), got " + std::to_string(p));
  dropout_impl(x, p, seed, y, true);
}

// The checks both LoRA dropout ops share: 1 to 3 members (seeds), x [T, in] packed, `rows` (n r) a multiple of n,
// p in [0, 1), a scratch of T * in elements of x's dtype. Returns T and in.
static std::pair<int64_t, int64_t> check_lora_dropout(const Expect& e, const Tensor& x, int64_t rows,
                                                      std::span<const uint64_t> seeds, float p, const Tensor& scratch,
                                                      const char* op) {
  const int n = int(seeds.size());
  const std::string name(op);
  QSFT_CHECK(n >= 1 && n <= cpu::kLoraDropoutMaxMembers, name + ": " + std::to_string(n) + " members, expected 1 to " +
                                                             std::to_string(cpu::kLoraDropoutMaxMembers));
  e.floating(x, (name + " x").c_str());
  QSFT_CHECK(rows % n == 0, name + ": " + std::to_string(rows) + " rows of A, not n r with n = " + std::to_string(n));
  const int64_t T = x.ndim ? x.dim(0) : 0, in = x.row_elems();
  e.placed(scratch, (name + " scratch").c_str());
  QSFT_CHECK(scratch.nbytes() >= size_t(T * in) * dtype_size(x.dtype),
             name + " scratch is " + scratch.shape_str() + ", smaller than x " + dims(T, in));
  QSFT_CHECK(p >= 0.0f && p < 1.0f, "dropout p must be in [0, 1), got " + std::to_string(p));
  return {T, in};
}

void Ops::lora_a_dropout(const Tensor& x, const Tensor& A, float p, std::span<const uint64_t> seeds, Tensor& u,
                         Tensor& scratch) {
  Scope s(*this, OpFamily::gemm);
  const Expect e{device()};
  QSFT_CHECK(A.ndim == 2, "lora_a_dropout A is " + A.shape_str() + ", expected [n r, in]");
  const auto [T, in] = check_lora_dropout(e, x, A.dim(0), seeds, p, scratch, "lora_a_dropout");
  e.matrix(A, x.dtype, A.dim(0), in, "lora_a_dropout A");
  e.matrix(u, x.dtype, T, A.dim(0), "lora_a_dropout u", true);
  Scope shape(*this, GemmWork{"lora_a_dropout", T, A.dim(0), in,
                              rows_bytes(T, in, x.dtype) + double(A.nbytes()) + rows_bytes(T, A.dim(0), u.dtype)});
  lora_a_dropout_impl(x, A, p, seeds, u, scratch, {T, A.dim(0), in});
}

void Ops::lora_da_dropout(const Tensor& du, const Tensor& x, float p, std::span<const uint64_t> seeds, Tensor& dA,
                          Tensor& scratch) {
  Scope s(*this, OpFamily::gemm);
  const Expect e{device()};
  QSFT_CHECK(dA.ndim == 2, "lora_da_dropout dA is " + dA.shape_str() + ", expected [n r, in]");
  const auto [T, in] = check_lora_dropout(e, x, dA.dim(0), seeds, p, scratch, "lora_da_dropout");
  e.matrix(dA, DType::F32, dA.dim(0), in, "lora_da_dropout dA");
  e.matrix(du, x.dtype, T, dA.dim(0), "lora_da_dropout du");
  Scope shape(*this,
              GemmWork{"lora_da_dropout +=", dA.dim(0), in, T,
                       rows_bytes(T, dA.dim(0), du.dtype) + rows_bytes(T, in, x.dtype) + 2 * double(dA.nbytes())});
  lora_da_dropout_impl(du, x, p, seeds, dA, scratch, {dA.dim(0), in, T});
}

void Ops::lora_dx_dropout(const Tensor& du, const Tensor& A, float p, std::span<const uint64_t> seeds, Tensor& dx,
                          Tensor& scratch, bool accumulate) {
  Scope s(*this, OpFamily::gemm);
  const Expect e{device()};
  QSFT_CHECK(A.ndim == 2, "lora_dx_dropout A is " + A.shape_str() + ", expected [n r, in]");
  const auto [T, in] = check_lora_dropout(e, dx, A.dim(0), seeds, p, scratch, "lora_dx_dropout");
  e.matrix(A, dx.dtype, A.dim(0), in, "lora_dx_dropout A");
  e.matrix(du, dx.dtype, T, A.dim(0), "lora_dx_dropout du");
  for (const Tensor* t : {&du, &A, static_cast<const Tensor*>(&scratch)})
    QSFT_CHECK(t->data != dx.data, "lora_dx_dropout: dx must be distinct from du, A and the scratch");
  Scope shape(*this, GemmWork{accumulate ? "lora_dx_dropout +=" : "lora_dx_dropout", T, in, A.dim(0),
                              rows_bytes(T, A.dim(0), du.dtype) + double(A.nbytes()) +
                                  rows_bytes(T, in, dx.dtype) * (accumulate ? 2 : 1)});
  lora_dx_dropout_impl(du, A, p, seeds, dx, scratch, {T, in, A.dim(0)}, accumulate);
}

void Ops::lora_db_du(const Tensor& dy, const Tensor& u, const Tensor& B, float s, Tensor& dB, Tensor& du,
                     Tensor& scratch) {
  Scope sc(*this, OpFamily::gemm);
  const Expect e{device()};
  QSFT_CHECK(dy.ndim >= 1 && B.ndim == 2,
             "lora_db_du dy is " + dy.shape_str() + " and B " + B.shape_str() + ", expected T rows and [out, r]");
  const int64_t T = dy.dim(0), out = dy.row_elems(), r = B.dim(1);
  e.floating(dy, "lora_db_du dy", true);
  e.matrix(dy, dy.dtype, T, out, "lora_db_du dy", true);
  e.matrix(B, dy.dtype, out, r, "lora_db_du B");
  e.matrix(u, dy.dtype, T, r, "lora_db_du u", true);
  e.matrix(du, dy.dtype, T, r, "lora_db_du du", true);
  e.matrix(dB, DType::F32, out, r, "lora_db_du dB");
  e.placed(scratch, "lora_db_du scratch");
  for (const Tensor* t : {&dy, &u, &B})
    QSFT_CHECK(t->data != du.data, "lora_db_du: du must be distinct from dy, u and B");
  Scope shape(*this, GemmWork{"lora_db_du", T, 2 * r, out,  // two products of 2 T r out FLOPs each
                              rows_bytes(T, out, dy.dtype) + 2 * rows_bytes(T, r, u.dtype) + double(B.nbytes()) +
                                  2 * double(dB.nbytes())});
  lora_db_du_impl(dy, u, B, s, dB, du, scratch, {T, r, out});
}

void Ops::lora_db_du_impl(const Tensor& dy, const Tensor& u, const Tensor& B, float s, Tensor& dB, Tensor& du, Tensor&,
                          const GemmSizes& sizes) {
  gemm_impl(Mat::of(dy), true, Mat::of(u), false, Mat::of(dB), s, 1.0f, nullptr, {sizes.K, sizes.N, sizes.M},
            nullptr);                                                                               // dB += s dy^T u
  gemm_impl(Mat::of(dy), false, Mat::of(B), false, Mat::of(du), s, 0.0f, nullptr, sizes, nullptr);  // du = s dy B
}

void Ops::lora_a_dropout_impl(const Tensor& x, const Tensor& A, float p, std::span<const uint64_t> seeds, Tensor& u,
                              Tensor& scratch, const GemmSizes& s) {
  const int64_t r = s.N / int64_t(seeds.size());
  const size_t elem = dtype_size(x.dtype);
  Tensor xd(scratch.data, x.dtype, {s.M, s.K}, x.device);
  for (size_t j = 0; j < seeds.size(); ++j) {
    dropout_impl(x, p, seeds[j], xd, false);
    const Mat Aj{static_cast<char*>(A.data) + j * size_t(r * s.K) * elem, A.dtype, r, s.K, s.K};  // rows j r..
    const Mat uj{static_cast<char*>(u.data) + j * size_t(r) * elem, u.dtype, s.M, r, u.stride0()};  // columns j r..
    gemm_impl(Mat::of(xd), false, Aj, true, uj, 1.0f, 0.0f, nullptr, {s.M, r, s.K}, nullptr);  // u_j = xd A_j^T
  }
}

void Ops::lora_da_dropout_impl(const Tensor& du, const Tensor& x, float p, std::span<const uint64_t> seeds,
                               Tensor& dA, Tensor& scratch, const GemmSizes& s) {
  const int64_t r = s.M / int64_t(seeds.size());
  const size_t elem = dtype_size(x.dtype);
  Tensor xd(scratch.data, x.dtype, {s.K, s.N}, x.device);
  for (size_t j = 0; j < seeds.size(); ++j) {
    dropout_impl(x, p, seeds[j], xd, false);
    const Mat duj{static_cast<char*>(du.data) + j * size_t(r) * elem, du.dtype, s.K, r, s.M};  // columns j r..
    const Mat dAj{static_cast<char*>(dA.data) + j * size_t(r * s.N) * 4, DType::F32, r, s.N, s.N};  // rows j r..
    gemm_impl(duj, true, Mat::of(xd), false, dAj, 1.0f, 1.0f, nullptr, {r, s.N, s.K}, nullptr);  // += du_j^T xd
  }
}

void Ops::lora_dx_dropout_impl(const Tensor& du, const Tensor& A, float p, std::span<const uint64_t> seeds, Tensor& dx,
                               Tensor& scratch, const GemmSizes& s, bool accumulate) {
  const int64_t r = s.K / int64_t(seeds.size());
  const size_t elem = dtype_size(du.dtype);
  Tensor g(scratch.data, dx.dtype, {s.M, s.N}, dx.device);
  for (size_t j = 0; j < seeds.size(); ++j) {
    const Mat duj{static_cast<char*>(du.data) + j * size_t(r) * elem, du.dtype, s.M, r, s.K};     // columns j r..
    const Mat Aj{static_cast<char*>(A.data) + j * size_t(r * s.N) * elem, A.dtype, r, s.N, s.N};  // rows j r..
    gemm_impl(duj, false, Aj, false, Mat::of(g), 1.0f, 0.0f, nullptr, {s.M, s.N, r}, nullptr);    // g = du_j A_j
    dropout_impl(g, p, seeds[j], dx, accumulate || j > 0);                                        // dx (+)= dropout(g)
  }
}

double Ops::sum_squares(const Tensor& x) {
  Scope s(*this, OpFamily::optimizer);
  Expect{device()}.floating(x, "sum_squares x");
  return sum_squares_impl(x);
}

void Ops::sum_squares(const Tensor& x, Tensor& out) {
  Scope s(*this, OpFamily::optimizer);
  const Expect e{device()};
  e.floating(x, "sum_squares x");
  e.vector(out, DType::F32, 1, "sum_squares out");
  sum_squares_to_impl(x, out);
}

void Ops::adamw_step(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, const AdamWHyper& h) {
  Scope s(*this, OpFamily::optimizer);
  const Expect e{device()};
  const int64_t n = p.numel();
  e.vector(p, DType::F32, n, "adamw p");
  e.vector(g, DType::F32, n, "adamw g");
  e.vector(m, DType::F32, n, "adamw m");
  e.vector(v, DType::F32, n, "adamw v");
  QSFT_CHECK(h.step >= 1, "adamw step counts from 1");
  adamw_step_impl(p, g, m, v, h);
}

void Ops::adamw8bit_step(Tensor& p, const Tensor& g, AdamW8bitMoments& s, const AdamWHyper& h, int64_t decayed) {
  Scope sc(*this, OpFamily::optimizer);
  const Expect e{device()};
  const int64_t n = p.numel(), blocks = (n + cpu::kAdamW8bitBlock - 1) / cpu::kAdamW8bitBlock;
  e.vector(p, DType::F32, n, "adamw8bit p");
  e.vector(g, DType::F32, n, "adamw8bit g");
  e.vector(s.m, DType::U8, n, "adamw8bit m");
  e.vector(s.v, DType::U8, n, "adamw8bit v");
  e.vector(s.absmax_m, DType::F32, blocks, "adamw8bit absmax_m");
  e.vector(s.absmax_v, DType::F32, blocks, "adamw8bit absmax_v");
  e.vector(s.map_m, DType::F32, 256, "adamw8bit map_m");
  e.vector(s.map_v, DType::F32, 256, "adamw8bit map_v");
  QSFT_CHECK(h.step >= 1, "adamw step counts from 1");
  QSFT_CHECK(decayed <= n, "adamw8bit decayed range beyond p");
  adamw8bit_step_impl(p, g, s, h, decayed < 0 ? n : decayed);
}

}  // namespace qsft
