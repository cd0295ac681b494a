// Ops: the seam between the model and a backend. The model (engine/model/) is written once against these calls;
// the cpu backend (fp32, the reference) and the cuda backend implement them. Shapes use T = tokens of the packed
// micro-batch, H = hidden, n = heads, D = head_dim, I = intermediate, V = vocab, S = sequences in the batch.
//
// Every op is a public non-virtual method that checks its arguments once (engine/ops.cpp: dtypes, shapes,
// placement; a failed check is the caller's bug and throws std::logic_error naming the argument), then calls the
// backend's protected `*_impl` with the sizes it derived. So a backend never re-derives or re-checks shapes.
//
// Conventions: row-major tensors, packed unless an op says it takes a strided view (Tensor::cols); outputs are
// overwritten unless the name says accumulate ("+="). A backend owns its memory: alloc_bytes() hands out device
// memory (the model carves it into arenas once, before step one: no allocation inside the step loop).
#pragma once
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/base/tensor.h"
#include "engine/op_profile.h"
#include "kernels/adamw.h"
#include "kernels/adamw8bit.h"
#include "kernels/attention.h"
#include "kernels/decode_attention.h"
#include "kernels/lora_dropout.h"
#include "kernels/nf4.h"
#include "kernels/rmsnorm.h"

namespace qsft {

// A row-major matrix view with a leading dimension (row stride in elements), for GEMMs over slices.
struct Mat {
  void* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0, ld = 0;
  static Mat of(const Tensor& t) {  // [rows, ...]: the first dimension is the rows, the rest the columns
    return {t.data, t.dtype, t.ndim ? t.dim(0) : 0, t.row_elems(), t.stride0()};
  }
};

// The storage format of a frozen Linear's weight: dense (F32/BF16), or 4-bit as bitsandbytes stores it (QLoRA).
enum class WeightFormat : uint8_t { dense, nf4, fp4 };
const char* weight_format_name(WeightFormat f);

// bitsandbytes' 4-bit format (kernels/nf4.h) of a weight [out, in]: blocks of 64 with an fp32 absmax, or with the
// absmax double-quantized (U8 codes, an F32 absmax2 per 256 of them, the offset). The weight may be up to three
// row ranges (`parts`, of part_rows[p] rows each, possibly unequal) quantized as separate tensors, as bitsandbytes
// quantizes the modules a fused weight stacks (gate_proj and up_proj; q_proj, k_proj and v_proj), each part with its
// own offset and its own absmax2 blocks (each part's blocks of 256 start at its first absmax).
struct Quant4 {
  WeightFormat format = WeightFormat::dense;
  DType compute = DType::F32;  // x, y and the dequantized weight: the backend's activation dtype
  Tensor absmax;               // F32 [out*in/64], or U8 [out*in/64] when double-quantized
  Tensor absmax2;              // double quantization: F32, ceil(part blocks / 256) per part in turn; else empty
  float offset[cpu::kQuant4MaxParts] = {};       // double quantization: the mean of each part's absmax
  int64_t part_rows[cpu::kQuant4MaxParts] = {};  // rows of each part (they sum to out)
  int parts = 1;
  bool double_quant() const { return !absmax2.empty(); }
};

// A frozen Linear layer y = x W^T + b in the format its weight is stored in; the backends dispatch on it.
struct LinearWeight {
  Tensor w;     // dense: [out, in] F32/BF16; 4-bit: the codes U8 [out, in/2], two per byte, high nibble first
  Tensor bias;  // [out], or empty: no bias
  Quant4 q;     // the 4-bit format's scales (format dense: unused)
  LinearWeight() = default;
  LinearWeight(Tensor weight, Tensor b) : w(weight), bias(b) {}  // dense
  bool quantized() const { return q.format != WeightFormat::dense; }
  DType dtype() const { return quantized() ? q.compute : w.dtype; }  // of x, y, bias
  int64_t out() const { return w.dim(0); }
  int64_t in() const { return quantized() ? 2 * w.dim(-1) : w.dim(-1); }
  // 4-bit parts: part p's first row, its absmax values (blocks of 64) and its first absmax2 value; absmax2_of(parts)
  // is the absmax2 count.
  int64_t part_row0(int p) const {
    int64_t r = 0;
    for (int i = 0; i < p; ++i) r += q.part_rows[i];
    return r;
  }
  int64_t part_blocks(int p) const { return q.part_rows[p] * in() / 64; }
  int64_t absmax2_of(int p) const {
    int64_t n = 0;
    for (int i = 0; i < p; ++i) n += (part_blocks(i) + 255) / 256;
    return n;
  }
};

// The packed micro-batch layout the attention and RoPE need. Device tensors on the backend's device.
struct SeqLayout {
  Tensor positions;   // I32 [T]: position of each token within its own sequence (restarts at 0)
  Tensor cu_seqlens;  // I32 [S+1]: token offsets of the sequences; cu_seqlens[S] == T
  int num_seqs = 0;
  int max_seqlen = 0;
};

// RoPE's frequencies (engine/model/rope_freqs.h makes them from the model config, scaled RoPE included):
// angle(t, i) = positions[t] * inv_freq[i]; cos and sin are multiplied by attention_scaling.
struct RopeFreqs {
  Tensor inv_freq;  // F32 [D/2] on the backend's device
  float attention_scaling = 1.0f;
};

// torch.optim.AdamW's settings of a run, and the hyper-parameters of one update (the settings at this step's learning
// rate, and the step count from 1); doubles, as torch's are Python floats. One definition, in kernels/adamw.h.
using AdamWSettings = cpu::AdamWSettings;
using AdamWHyper = cpu::AdamWHyper;
// The 8-bit AdamW state on the backend's device: codes and per-block absmax of each moment, and the two maps.
struct AdamW8bitMoments {
  Tensor m, v;                // U8 [P]
  Tensor absmax_m, absmax_v;  // F32 [ceil(P / 256)]
  Tensor map_m, map_v;        // F32 [256]: dynamic_map(true), dynamic_map(false)
  cpu::AdamW8bitState pointers() const {
    return {m.as<uint8_t>(), v.as<uint8_t>(), absmax_m.f32(), absmax_v.f32(), map_m.f32(), map_v.f32()};
  }
};

// Where an allocation lives: device memory, or host memory mapped into the device's address space (pinned; the
// device's kernels read it in place over PCIe). The cpu backend's device memory is the host's: both kinds are the
// same memory there, only accounted apart.
enum class MemoryKind : uint8_t { device, host_mapped };

class Ops {
 public:
  virtual ~Ops() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;

  // ---- memory ----
  virtual void* alloc_bytes(size_t bytes) = 0;  // zero-initialised
  // Zero-initialised host memory that the device's ops read and write in place (cuda: pinned, mapped, its pointer
  // valid on the device too); freed by free_bytes. For a large frozen table read a few rows per step (the untied
  // embedding: engine/model/qwen2.h); copy_to_device/copy_to_host reach it like device memory.
  virtual void* alloc_host_mapped(size_t bytes) = 0;
  virtual void free_bytes(void* p) = 0;  // memory of either kind
  virtual void copy_to_device(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void synchronize() {}
  // The compute stream (a cudaStream_t on cuda, nullptr on cpu): the NCCL Comm enqueues its collectives on it.
  virtual void* stream() const { return nullptr; }
  // Rows of a 4-bit weight [out, in] dequantized at once into a scratch of at most `limit` bytes (elements of
  // elem_size bytes): all of them when they fit, else whole blocks of 64 rows (at least 64).
  static int64_t quant_chunk_rows(int64_t out, int64_t in, size_t elem_size, size_t limit);
  // Bytes of device memory free for our arenas (0 = unknown).
  virtual size_t memory_available() const { return 0; }
  // Device bytes this backend holds now: every alloc_bytes not yet freed (as asked, before any rounding) plus the
  // backend's own buffers (weight scratch; on cuda the cuBLASLt workspace and the growable kernel scratch). What
  // `qwen-sft plan` counts line by line (engine/train/plan.h), checked in tests/unit/plan_test.cpp.
  virtual size_t bytes_held() const { return allocated_bytes_[int(MemoryKind::device)]; }
  // Host bytes this backend holds mapped for the device now: every alloc_host_mapped not yet freed (not in
  // bytes_held; the plan's host line, engine/train/plan.h).
  size_t host_bytes_held() const { return allocated_bytes_[int(MemoryKind::host_mapped)]; }
  void zero(Tensor& t);                       // t = 0 (packed)
  // dst = src (same dtype and element count, packed; or the same rows of row_elems() elements, either side a strided
  // view: e.g. q's columns of a fused QKV output into a packed [T, n, D])
  void copy(Tensor& dst, const Tensor& src);
  // dst = src rounded to dst's dtype (round to nearest even): src F32, dst F32 or BF16, same element count, packed.
  void cast(const Tensor& src, Tensor& dst);

  // ---- GEMM (the LoRA branches and anything that is not a frozen Linear) ----
  // C = alpha * op(A) @ op(B) + beta * C (+ bias[N] broadcast over rows when bias is given).
  // op(A) is [M, K] (A is [K, M] when transA), op(B) is [K, N] (B is [N, K] when transB); C is [M, N].
  // fp32 accumulation on every backend.
  void gemm(const Mat& A, bool transA, const Mat& B, bool transB, const Mat& C, float alpha, float beta,
            const Tensor* bias = nullptr);

  // ---- frozen Linear layers, whatever the weight's format ----
  // y = x W^T + b (+ residual).   x [T, in], y [T, out] (may be a column slice), residual like y or null.
  void linear(const Tensor& x, const LinearWeight& W, Tensor& y, const Tensor* residual = nullptr);
  // dx = dy W (accumulate: dx += dy W).   dy [T, out] (may be a column slice), dx [T, in]
  void linear_dgrad(const Tensor& dy, const LinearWeight& W, Tensor& dx, bool accumulate);
  // out = W as a dense matrix [out, in] of W.dtype() (a 4-bit weight dequantized exactly as bitsandbytes does).
  void dequantize(const LinearWeight& W, Tensor& out);

  // ---- weight gradients (full fine-tuning): F32, accumulated (+=), each element summed in a fixed order ----
  // dW.w += dy^T x; dW.bias += sum_t dy (when dW has a bias).   dy [T, out] (may be a column slice), x [T, in]
  // (dy's dtype), dW.w F32 [out, in], dW.bias F32 [out] or empty.
  void linear_wgrad(const Tensor& dy, const Tensor& x, const LinearWeight& dW);
  // dtable[ids[t], :] += dout[t, :].   ids I32 [T], dout [T, H], dtable F32 [V, H]
  void embedding_bwd(const Tensor& ids, const Tensor& dout, Tensor& dtable);
  // dw += sum_t dy[t] * x[t] * rstd[t] (x: the norm's input, y = x rstd w).   dy, x [T, H] (rows as in rmsnorm_fwd:
  // packed or strided head views), rstd F32 [T], dw F32 [H]
  void rmsnorm_wgrad(const Tensor& dy, const Tensor& x, const Tensor& rstd, Tensor& dw);

  // ---- embedding ----
  // out[t, :] = table[ids[t], :].   ids I32 [T], table [V, H], out [T, H]
  void embedding_fwd(const Tensor& ids, const Tensor& table, Tensor& out);
  // NEFTune: x += U(-scale, scale) elementwise, scale = alpha / sqrt(L * H); the noise is a function of (seed, index).
  void neftune_noise(Tensor& x, float scale, uint64_t seed);

  // ---- RMSNorm (Qwen2: y = x * rsqrt(mean(x^2) + eps) * w, statistics in fp32) ----
  // x [T, H], w [H], y [T, H], rstd F32 [T] (saved for backward). x, y (and the backward's dy, dx) may also be
  // [T', heads, H] views whose token rows are further apart (Tensor::row_stride; y may be x): a norm over each head,
  // T = T' heads rows, e.g. Qwen3's q and k head norms on the column slices of the fused QKV output, rstd [T' heads].
  void rmsnorm_fwd(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd);
  // dx += d rmsnorm(x)/dx ^T dy  (accumulate: dx is the residual-stream gradient), else dx = d rmsnorm(x)/dx ^T dy
  // where dx may be dy itself (in place). dy, x, dx [T, H]
  void rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx,
                   bool accumulate = true);

  // ---- RoPE (rotate_half; cos/sin of positions[t] * inv_freq, scaled) ----
  // x [T, n, D] in place; the backward applies the transposed rotation to the gradient, also in place. x may be a
  // strided head view (Tensor::row_stride: token rows further apart, heads packed), e.g. the q and k columns of a
  // fused [T, (n + 2 nkv) D] QKV output seen as one [T, n + nkv, D]: q and k rotated in one call.
  void rope_fwd(Tensor& x, const SeqLayout& seq, const RopeFreqs& f);
  void rope_bwd(Tensor& dx, const SeqLayout& seq, const RopeFreqs& f);

  // ---- attention: causal within each packed sequence, GQA (q head h reads kv head h / (n / nkv)) ----
  // q [T, n, D], k, v [T, nkv, D], out [T, n, D], lse F32 [n, T] (log-sum-exp of the scaled scores, saved).
  // q, k and v may be strided head views (the column slices of a fused QKV output); out and lse are packed.
  void attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& seq, Tensor& out, Tensor& lse);
  // dq [T, n, D], dk, dv [T, nkv, D] are overwritten; each has the row stride of its input (q, k, v: the column
  // slices of a fused d_qkv when q, k, v are those of qkv); dout packed.
  void attention_bwd(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                     const Tensor& lse, const SeqLayout& seq, Tensor& dq, Tensor& dk, Tensor& dv);

  // ---- decode attention (generation): one new token per sequence over its KV cache, read in place ----
  // q [B, n, D]; k_new, v_new [B, nkv, D] (this step's keys and values, after RoPE); k_cache, v_cache
  // [slots, S, nkv, D]; slot, len I32 [B]. Writes k_new[b], v_new[b] at position len[b] - 1 of cache slot slot[b],
  // then out[b] = causal attention of q[b] over that slot's positions [0, len[b]) (kernels/decode_attention.h).
  // Rows may share a slot (new tokens of one sequence, len = position + 1): every row's key and value is written
  // before any row reads the cache.
  void decode_attention(const Tensor& q, const Tensor& k_new, const Tensor& v_new, Tensor& k_cache, Tensor& v_cache,
                        const Tensor& slot, const Tensor& len, Tensor& out);

  // ---- SwiGLU on a fused gate/up output: out = silu(gate) * up ----
  // gate_up [T, 2I] (gate = columns [0, I), up = [I, 2I)), out [T, I]; dgate_up [T, 2I] overwritten, and may be
  // gate_up itself (each element is read before it is written).
  void swiglu_fwd(const Tensor& gate_up, Tensor& out);
  void swiglu_bwd(const Tensor& dout, const Tensor& gate_up, Tensor& dgate_up);

  // ---- LM head + cross-entropy, chunked over tokens: never [T, V] logits at once ----
  // logits = h @ W^T (W [V, H]); for each t with targets[t] >= 0 (-100 = not trained):
  //   loss_t = logsumexp(logits_t) - logits_t[target];   loss_sum[0] += sum_t loss_t (F32 [1])
  //   correct[0] += (argmax logits_t == target)          (I32 [1], for token accuracy)
  //   dh_t = grad_scale * (softmax(logits_t) - onehot(target)) @ W   (0 for untrained t); dh [T, H] overwritten.
  // dh may be null or empty (eval: no backward). dW (full fine-tuning: W is trained), F32 [V, H] or null:
  //   dW += sum_t grad_scale * (softmax(logits_t) - onehot(target_t))^T h_t   (needs dh)
  // scratch (packed, any dtype) or null: device memory free during the call (the model lends the run state's backward
  // scratch); a backend that needs scratch uses it when it is large enough, its own buffer otherwise.
  void lm_head_ce(const Tensor& h, const Tensor& W, const Tensor& targets, float grad_scale, Tensor& loss_sum,
                  Tensor& correct, Tensor* dh, Tensor* dW = nullptr, const Tensor* scratch = nullptr);
  // Greedy decoding: out[r] = the first argmax of logits[r, :] (kernels/argmax.h).   logits F32 [R, V], out I32 [R]
  void argmax_rows(const Tensor& logits, Tensor& out);

  // ---- elementwise and reductions ----
  void add_inplace(Tensor& y, const Tensor& x);  // y += x
  void scale_inplace(Tensor& y, float s);        // y *= s
  // Dropout: y = x * mask / (1 - p), mask ~ Bernoulli(1 - p) as a function of (seed, index). p == 0 copies.
  void dropout(const Tensor& x, float p, uint64_t seed, Tensor& y);
  // y += dropout(x) with dropout's mask and scaling, in one pass (x and y distinct, like shapes).
  void dropout_add(Tensor& y, const Tensor& x, float p, uint64_t seed);
  // LoRA's A projections with dropout applied where x is read (engine/model/lora_linear.h), for the n =
  // seeds.size() <= cpu::kLoraDropoutMaxMembers members of a stack, A = [A_1; ...; A_n] [n r, in]:
  //   u[:, j r:(j+1) r] = dropout(x, p, seeds[j]) A_j^T       dropout: this class's, bit for bit the same mask
  // x [T, in] packed (any shape with T rows), u [T, n r] of x's dtype (may be a column slice). scratch: packed device
  // memory of >= T * in elements of x's dtype, free during the call. Profiled as gemm. Every backend may run it as
  // dropout into the scratch then one GEMM per member (the CPU does: the same bits as those two ops); the CUDA one
  // reads x once for all members where its kernel takes the shapes (kernels/lora_dropout_cuda.h).
  void lora_a_dropout(const Tensor& x, const Tensor& A, float p, std::span<const uint64_t> seeds, Tensor& u,
                      Tensor& scratch);
  // Its backward's A gradients with the same masks: dA = [dA_1; ...; dA_n] F32 [n r, in] packed, accumulated:
  //   dA_j += du_j^T dropout(x, p, seeds[j])       du = [du_1, ..., du_n] [T, n r] packed, x [T, in] packed
  // scratch as for lora_a_dropout. Profiled as gemm. The default (the CPU's): dropout then a GEMM per member; the
  // CUDA one reads x once for all members where its kernel takes the shapes (kernels/lora_dropout_cuda.h).
  void lora_da_dropout(const Tensor& du, const Tensor& x, float p, std::span<const uint64_t> seeds, Tensor& dA,
                       Tensor& scratch);
  // Its backward's input gradient through the same masks, into dx [T, in] packed (x's dtype):
  //   dx += sum_j dropout(du_j A_j, p, seeds[j])      du [T, n r] packed, A = [A_1; ...; A_n] [n r, in] packed
  // (d dropout_j(x) / dx is member j's mask times 1 / (1 - p), at x's index); dx = ... without accumulate. scratch
  // as for lora_a_dropout. Profiled as gemm. The default: per member a GEMM into the scratch, then dropout (the
  // first member without accumulate) or dropout_add; the CUDA one reads (when accumulating) and writes dx once for
  // all members where its kernel takes the shapes (kernels/skinny_gemm_cuda.h).
  void lora_dx_dropout(const Tensor& du, const Tensor& A, float p, std::span<const uint64_t> seeds, Tensor& dx,
                       Tensor& scratch, bool accumulate = true);
  // LoRA's B and u gradients for one member, from one read of dy where the backend can (the default: two GEMMs):
  //   dB += s dy^T u   F32 [out, r] packed          du = s dy B   [T, r] (written)
  // dy [T, out] (any shape with T rows of out), u [T, r] and du [T, r] may be column slices (row strides), B [out, r]
  // packed, all of dy's dtype.
  // scratch: packed device memory free during the call, for a backend's partial sums (the caller lends its dropout
  // scratch). Profiled as gemm; the CUDA one runs one kernel where it takes the shapes (kernels/lora_db_du_cuda.h).
  void lora_db_du(const Tensor& dy, const Tensor& u, const Tensor& B, float s, Tensor& dB, Tensor& du, Tensor& scratch);
  // sum of squares of x, reduced in a fixed order (deterministic), returned to the host.
  double sum_squares(const Tensor& x);
  // The same sum (rounded to fp32) left on the device in out, F32 [1]: no wait for the host.
  void sum_squares(const Tensor& x, Tensor& out);

  // ---- optimizer: torch.optim.AdamW on F32 parameters (decoupled weight decay, bias correction) ----
  // p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
  // p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).   p, g, m, v F32 [P]
  void adamw_step(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, const AdamWHyper& h);
  // bitsandbytes' 8-bit blockwise AdamW (kernels/adamw8bit.h: optim "adamw_8bit"): p, g F32 [P]; the moments'
  // codes U8 [P], their absmax F32 [ceil(P / 256)] (blocks of 256 from the first parameter), maps F32 [256].
  // The weight decay applies to p[0, decayed) only (-1: all of p; full fine-tuning's no-decay group follows).
  void adamw8bit_step(Tensor& p, const Tensor& g, AdamW8bitMoments& s, const AdamWHyper& h, int64_t decayed = -1);

  // ---- graphs: the ops called between begin_capture and end_capture are recorded, not run; replay runs them again
  // on the same buffers (with their contents at replay time). Only device work may be recorded: no copy from or to
  // the host, no allocation (a scratch buffer must have grown to its size in an earlier, eager call).
  // generation's decode step (engine/generate/decode_graphs.h). The cpu backend records nothing: can_capture false.
  class Graph {
   public:
    virtual ~Graph() = default;
  };
  virtual bool can_capture() const { return false; }
  virtual void begin_capture();  // needs can_capture()
  // The recorded graph, or null with the reason in *why (an op did what a capture may not); never throws.
  virtual std::unique_ptr<Graph> end_capture(std::string* why);
  // False, running nothing, when g is stale: a buffer the backend lent its ops (a scratch) has moved since g was
  // recorded. Then run the ops eagerly and record them again.
  virtual bool replay(Graph& g);

  // ---- profile (QSFT_PROFILE=1 in the environment: time per op family and GEMM shape, engine/op_profile.h) ----
  bool profiling() const { return profiling_; }
  // The tables of time per op family and per GEMM shape since the start or the last profile_reset (e.g. after a
  // warm-up step).
  std::string profile_report();
  void profile_reset();
  // The tokens of the micro-batch the next ops compute on: the GEMM shape table shows that dimension as T.
  void profile_tokens(int64_t T) {
    if (profiling_) profile_.set_tokens(T);
  }

 protected:
  Ops();
  struct GemmSizes {
    int64_t M = 0, N = 0, K = 0;
  };

  virtual void zero_impl(Tensor& t) = 0;
  virtual void copy_impl(Tensor& dst, const Tensor& src) = 0;
  virtual void cast_impl(const Tensor& src, Tensor& dst) = 0;  // F32 -> BF16
  // C = alpha op(A) op(B) + beta * src (+ bias): src is c_src when given (C's shape and leading dimension: a
  // residual added without a copy), else C itself.
  virtual void gemm_impl(const Mat& A, bool transA, const Mat& B, bool transB, const Mat& C, float alpha, float beta,
                         const Tensor* bias, const GemmSizes& s, const void* c_src) = 0;
  // Both go through gemm_impl; a 4-bit weight is first dequantized into the backend's weight scratch.
  virtual void linear_impl(const Tensor& x, const LinearWeight& W, Tensor& y, const Tensor* residual);
  virtual void linear_dgrad_impl(const Tensor& dy, const LinearWeight& W, Tensor& dx, bool accumulate);
  // dW.w through gemm_impl, then bias_grad_impl when there is a bias.
  virtual void linear_wgrad_impl(const Tensor& dy, const Tensor& x, const LinearWeight& dW);
  virtual void bias_grad_impl(const Tensor& dy, Tensor& db, int64_t T, int64_t N) = 0;  // db += sum_t dy[t]
  // A backend with 4-bit weights: out [row1 - row0, in] (W.dtype(), packed) = rows [row0, row1) of W dequantized
  // (row0, row1 multiples of 64 or W.out()), and a scratch of `bytes` device bytes valid until the next call (the
  // defaults refuse: no 4-bit weights on this backend). The linear ops dequantize a weight in chunks of rows of at
  // most weight_scratch_limit() bytes.
  virtual void dequantize_impl(const LinearWeight& W, int64_t row0, int64_t row1, Tensor& out);
  virtual void* weight_scratch(size_t bytes);
  virtual size_t weight_scratch_limit() const { return std::numeric_limits<size_t>::max(); }
  virtual void embedding_fwd_impl(const Tensor& ids, const Tensor& table, Tensor& out) = 0;
  virtual void embedding_bwd_impl(const Tensor& ids, const Tensor& dout, Tensor& dtable) = 0;
  virtual void neftune_noise_impl(Tensor& x, float scale, uint64_t seed) = 0;
  virtual void rmsnorm_fwd_impl(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd, int64_t T,
                                int64_t H) = 0;
  virtual void rmsnorm_bwd_impl(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx,
                                int64_t T, int64_t H, bool accumulate) = 0;
  // Where a checked norm operand's rows of H lie: packed, or the heads of its (strided) token rows.
  static NormRows norm_rows(const Tensor& t, int64_t H) {
    return t.contiguous() ? NormRows::packed(H) : NormRows{t.row_elems() / H, t.stride0()};
  }
  virtual void rmsnorm_wgrad_impl(const Tensor& dy, const Tensor& x, const Tensor& rstd, Tensor& dw, int64_t T,
                                  int64_t H) = 0;
  virtual void rope_impl(Tensor& x, const SeqLayout& seq, const RopeFreqs& f, bool inverse) = 0;
  virtual void attention_fwd_impl(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& seq, Tensor& out,
                                  Tensor& lse, const cpu::AttentionDims& d) = 0;
  virtual void attention_bwd_impl(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& out, const Tensor& lse, const SeqLayout& seq, Tensor& dq, Tensor& dk,
                                  Tensor& dv, const cpu::AttentionDims& d) = 0;
  virtual void decode_attention_impl(const Tensor& q, const Tensor& k_new, const Tensor& v_new, Tensor& k_cache,
                                     Tensor& v_cache, const Tensor& slot, const Tensor& len, Tensor& out,
                                     const cpu::DecodeAttentionDims& d) = 0;
  virtual void swiglu_fwd_impl(const Tensor& gate_up, Tensor& out, int64_t T, int64_t I) = 0;
  virtual void swiglu_bwd_impl(const Tensor& dout, const Tensor& gate_up, Tensor& dgate_up, int64_t T, int64_t I) = 0;
  virtual void lm_head_ce_impl(const Tensor& h, const Tensor& W, const Tensor& targets, float grad_scale,
                               Tensor& loss_sum, Tensor& correct, Tensor* dh, Tensor* dW, const Tensor* scratch) = 0;
  virtual void argmax_rows_impl(const Tensor& logits, Tensor& out, int64_t R, int64_t V) = 0;
  virtual void add_inplace_impl(Tensor& y, const Tensor& x) = 0;
  virtual void scale_inplace_impl(Tensor& y, float s) = 0;
  virtual void dropout_impl(const Tensor& x, float p, uint64_t seed, Tensor& y, bool accumulate) = 0;
  // The default: per member, dropout_impl into the scratch (as [T, in]) then gemm_impl into its columns of u.
  virtual void lora_a_dropout_impl(const Tensor& x, const Tensor& A, float p, std::span<const uint64_t> seeds,
                                   Tensor& u, Tensor& scratch, const GemmSizes& s);
  // The default: per member, dropout_impl into the scratch then gemm_impl (du_j^T xd) into its rows of dA, beta 1.
  // s: M = n r, N = in, K = T.
  virtual void lora_da_dropout_impl(const Tensor& du, const Tensor& x, float p, std::span<const uint64_t> seeds,
                                    Tensor& dA, Tensor& scratch, const GemmSizes& s);
  // The default: per member, gemm_impl (du_j A_j) into the scratch then dropout_impl into dx (accumulating but for
  // the first member without accumulate). s: M = T, N = in, K = n r.
  virtual void lora_dx_dropout_impl(const Tensor& du, const Tensor& A, float p, std::span<const uint64_t> seeds,
                                    Tensor& dx, Tensor& scratch, const GemmSizes& s, bool accumulate);
  // The default: gemm_impl twice, dB += s dy^T u then du = s dy B. s: M = T, N = r, K = out.
  virtual void lora_db_du_impl(const Tensor& dy, const Tensor& u, const Tensor& B, float s, Tensor& dB, Tensor& du,
                               Tensor& scratch, const GemmSizes& sizes);
  virtual double sum_squares_impl(const Tensor& x) = 0;
  virtual void sum_squares_to_impl(const Tensor& x, Tensor& out) = 0;
  virtual void adamw_step_impl(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, const AdamWHyper& h) = 0;
  virtual void adamw8bit_step_impl(Tensor& p, const Tensor& g, AdamW8bitMoments& s, const AdamWHyper& h,
                                   int64_t decayed) = 0;

  // A backend reports each alloc_bytes / alloc_host_mapped (the bytes asked) and free_bytes, for bytes_held() and
  // host_bytes_held(); note_free says which kind p was (device for a pointer it does not know).
  void note_alloc(const void* p, size_t bytes, MemoryKind kind = MemoryKind::device);
  MemoryKind note_free(const void* p);

  // Profiling hooks around every op, and again around a GEMM-like op's work inside it (only called while
  // profiling; spans nest, ended in the reverse order): a backend times the span between them (the CPU with a host
  // clock, the GPU with events on its stream) and adds it to the slot's total (OpProfile's slots).
  virtual void profile_begin(int slot);
  virtual void profile_end(int slot);
  // Milliseconds per slot so far, for every slot begun (the GPU waits for its events here).
  virtual void profile_collect(std::vector<double>& ms);

 private:
  class Scope;  // begin/end around one public op (its family) or its GEMM work (its shape)
  // Rows of W per GEMM: all of a dense W.
  int64_t chunk_rows(const LinearWeight& W) const;
  // Rows [row0, row1) of W as a dense matrix: a view of a dense W, or dequantized into the weight scratch.
  Tensor weight_rows(const LinearWeight& W, int64_t row0, int64_t row1);
  struct Allocation {
    size_t bytes;
    MemoryKind kind;
  };
  std::unordered_map<const void*, Allocation> allocations_;  // alloc_bytes / alloc_host_mapped not yet freed
  size_t allocated_bytes_[2] = {};                           // their sums by MemoryKind
  bool profiling_ = false;
  OpProfile profile_;
  std::vector<double> host_ms_;                    // the default (host clock) timings per slot
  std::vector<std::pair<int, double>> host_open_;  // begun spans: (slot, start ms)
};

// Device memory the cuda backend takes beyond the model's arenas (its cuBLASLt workspace).
constexpr size_t kCudaScratchBytes = size_t(32) << 20;
// The NCCL communicator's buffer for host values (engine/dist/nccl_comm.cpp), with world_size > 1 on cuda.
constexpr size_t kNcclScratchBytes = size_t(1) << 20;
// The cuda backend's largest dequantized chunk of a 4-bit weight (QLoRA), in bytes.
constexpr size_t kCudaWeightScratchBytes = size_t(16) << 20;

// The fp32 reference backend (OpenMP). Always available.
std::unique_ptr<Ops> make_cpu_ops();
// The CUDA backend; throws InputError when there is no usable GPU or it was not built.
std::unique_ptr<Ops> make_cuda_ops();
bool cuda_available();

}  // namespace qsft
