// The cuBLASLt GEMM behind CudaOps::gemm: row-major operands with leading dimensions, fp32 accumulation, bf16 or
// fp32 storage, bias epilogue, beta = 1 accumulation. Descriptors and the heuristic's 8 best algorithms are cached
// per shape, leading dimensions, dtypes, epilogue and pointer alignment; when a launch fails the next algorithm is
// tried (and kept), and an error names the shapes, dtypes, leading dimensions and alignments. One 32 MiB workspace.
// Plain C++ declarations (no CUDA types): the stream is a void* cudaStream_t.
#pragma once
#include <cstdint>
#include <memory>

#include "engine/base/tensor.h"

namespace qsft::cuda {

// A row-major matrix in device memory: rows x cols, row stride ld (>= cols) elements.
struct GemmOperand {
  void* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0, ld = 0;
};

class GemmRunner {
 public:
  static constexpr size_t kWorkspaceBytes = size_t(32) << 20;

  explicit GemmRunner(void* stream);  // creates the cuBLASLt handle and the workspace (needs a GPU)
  ~GemmRunner();
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;

  // C = alpha * op(A) @ op(B) + beta * C (+ bias[N] over rows), exactly Ops::gemm's contract (beta == 0 never
  // reads C). With c_src, the beta term reads c_src instead of C (cuBLASLt's C != D: a residual added without a
  // copy); c_src has C's dtype, shape and leading dimension. Dtypes: when A, B and C are all F32 the product is fp32
  // (cuBLASLt's fp32 path); otherwise A and B are bf16 (an F32 one, e.g. a LoRA matrix, is first cast to a bf16 scratch
  // copy) and C may be BF16 or F32. bias has C's dtype.
  void run(const GemmOperand& A, bool transA, const GemmOperand& B, bool transB, const GemmOperand& C, float alpha,
           float beta, const void* bias, const void* c_src = nullptr);

  size_t cached_plans() const;
  int scratch_grows() const;  // times the bf16 cast scratch moved (it grew): graphs recorded before point into it

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qsft::cuda
