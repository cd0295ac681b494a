// cuBLASLt is column-major; our operands are row-major. A row-major [r, c] matrix with stride ld is the
// column-major [c, r] matrix with the same ld, so C = op(A) op(B) (row-major) is computed as the column-major
//   C^T [N, M] = op(B)^T [N, K] @ op(A)^T [K, M]
// i.e. cuBLASLt's "A" is our B (transposed iff transB), its "B" is our A (transposed iff transA), m = N, n = M.
// The bias epilogue adds a vector over the m = N rows of the column-major D: our bias[N] broadcast over rows.
#include <cublasLt.h>

#include <algorithm>
#include <cstdio>
#include <unordered_map>

#include "kernels/elementwise_cuda.h"
#include "kernels/gemm_cuda.h"
#include "kernels/kernel_util_cuda.h"
#include "kernels/runtime_cuda.h"

#define QSFT_CUBLAS_CHECK(call) ::qsft::cuda::check_cublas((call), #call, __FILE__, __LINE__)

namespace qsft::cuda {
namespace {

void check_cublas(cublasStatus_t s, const char* what, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + what + ": cuBLAS status " +
                             std::to_string(int(s)) + " (" + cublasGetStatusString(s) + ")");
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::BF16: return CUDA_R_16BF;
    default: throw std::logic_error(std::string("gemm: dtype ") + dtype_name(t) + " is not F32 or BF16");
  }
}

// Largest power of two (<= 256) dividing the address: what cuBLASLt may assume about the pointer.
uint32_t alignment_of(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && a % align) align >>= 1;
  return align;
}

void check_alignment(const GemmOperand& x, const char* name) {
  const uint32_t align = alignment_of(x.data);
  if (align < dtype_size(x.dtype))
    throw std::logic_error(std::string("gemm operand ") + name + " (" + dtype_name(x.dtype) + ", " +
                           std::to_string(x.rows) + "x" + std::to_string(x.cols) + ", ld " + std::to_string(x.ld) +
                           ") is " + std::to_string(align) + "-byte aligned, less than its element size");
}

// Everything the descriptors and the algorithm choice depend on.
struct PlanKey {
  int64_t m, n, k, lda, ldb, ldc;
  bool ta, tb, bias;
  DType ab_type, c_type;
  uint32_t align_a, align_b, align_c;
  bool operator==(const PlanKey&) const = default;
};
struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    size_t h = 1469598103934665603ull;
    auto mix = [&h](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    for (int64_t v : {k.m, k.n, k.k, k.lda, k.ldb, k.ldc}) mix(uint64_t(v));
    mix(uint64_t(k.ta) | uint64_t(k.tb) << 1 | uint64_t(k.bias) << 2 | uint64_t(k.ab_type) << 3 |
        uint64_t(k.c_type) << 8);
    mix(uint64_t(k.align_a) | uint64_t(k.align_b) << 16 | uint64_t(k.align_c) << 32);
    return h;
  }
};

// The GEMM in our row-major terms (the key holds cuBLASLt's: m = N, n = M, "a" = our B, "b" = our A), for errors:
// shapes, transposes, dtypes, leading dimensions and pointer alignments of A, B and C.
std::string describe(const PlanKey& k) {
  auto s = [](auto v) { return std::to_string(v); };
  return "GEMM C[" + s(k.n) + "," + s(k.m) + "] = op(A)[" + s(k.n) + "," + s(k.k) + "] op(B)[" + s(k.k) + "," + s(k.m) +
         "] (row-major M=" + s(k.n) + " N=" + s(k.m) + " K=" + s(k.k) + "): A " + dtype_name(k.ab_type) +
         (k.tb ? " transposed" : "") + " lda=" + s(k.ldb) + " align=" + s(k.align_b) + "B; B " + dtype_name(k.ab_type) +
         (k.ta ? " transposed" : "") + " ldb=" + s(k.lda) + " align=" + s(k.align_a) + "B; C " + dtype_name(k.c_type) +
         " ldc=" + s(k.ldc) + " align=" + s(k.align_c) + "B" + (k.bias ? "; bias epilogue" : "");
}

constexpr int kMaxAlgos = 8;  // candidates asked of the heuristic: fallbacks when a launch fails

// Descriptors in cuBLASLt's terms ("a" = our B, "b" = our A, c = our C) and the heuristic's algorithms for them.
// An algorithm whose launch fails is skipped for good, so the next call starts with the one that worked.
struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  // A fixed array, best first (nvcc 13's front end fails on a std::vector of cublasLtMatmulAlgo_t, a typedef of
  // an unnamed struct: internal error in stl_construct.h), and the index of the one in use.
  cublasLtMatmulAlgo_t algos[kMaxAlgos] = {};
  int num_algos = 0, next = 0;
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

}  // namespace

struct GemmRunner::Impl {
  void* stream;
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  ScratchBuffer cast_a, cast_b;  // bf16 copies of F32 operands in a bf16 product
  std::unordered_map<PlanKey, std::unique_ptr<Plan>, PlanKeyHash> plans;

  explicit Impl(void* s) : stream(s), cast_a(s), cast_b(s) {
    QSFT_CUBLAS_CHECK(cublasLtCreate(&handle));
    QSFT_CUDA_CHECK(cudaMalloc(&workspace, kWorkspaceBytes));
    // Zeroed once: a cuBLASLt kernel reading workspace it has not written would fail compute-sanitizer's initcheck
    // (gpu-check's initcheck stages) although the result does not depend on it.
    QSFT_CUDA_CHECK(cudaMemset(workspace, 0, kWorkspaceBytes));
  }
  ~Impl() {
    plans.clear();
    if (workspace) cudaFree(workspace);
    if (handle) cublasLtDestroy(handle);
  }

  // The heuristic's algorithms (best first) for plan's descriptors, with our workspace and pointer alignments.
  void find_algos(Plan& plan, const PlanKey& key) {
    cublasLtMatmulPreference_t pref = nullptr;
    QSFT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = kWorkspaceBytes;
    const uint32_t aligns[4] = {key.align_a, key.align_b, key.align_c, key.align_c};
    const cublasLtMatmulPreferenceAttributes_t align_attrs[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    cublasLtMatmulHeuristicResult_t results[kMaxAlgos] = {};
    int found = 0;
    try {
      QSFT_CUBLAS_CHECK(
          cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
      for (int i = 0; i < 4; ++i)
        QSFT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, align_attrs[i], &aligns[i], sizeof aligns[i]));
      const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle, plan.op, plan.a, plan.b, plan.c, plan.c, pref,
                                                               kMaxAlgos, results, &found);
      if (st != CUBLAS_STATUS_SUCCESS)
        throw std::runtime_error("cublasLtMatmulAlgoGetHeuristic: cuBLAS status " + std::to_string(int(st)) + " (" +
                                 cublasGetStatusString(st) + ") for the " + describe(key));
    } catch (...) {
      cublasLtMatmulPreferenceDestroy(pref);
      throw;
    }
    cublasLtMatmulPreferenceDestroy(pref);
    for (int i = 0; i < found; ++i)
      if (results[i].state == CUBLAS_STATUS_SUCCESS) plan.algos[plan.num_algos++] = results[i].algo;
  }

  Plan& plan_for(const PlanKey& key) {
    auto it = plans.find(key);
    if (it != plans.end()) return *it->second;
    auto plan = std::make_unique<Plan>();
    const cudaDataType_t ab = cuda_type(key.ab_type), ct = cuda_type(key.c_type);
    QSFT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t op_a = key.ta ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = key.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    QSFT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
    QSFT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
    if (key.bias) {
      const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
      QSFT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
      QSFT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &ct, sizeof ct));
    }
    // Stored shapes (column-major rows x cols): "a" is m x k or k x m when transposed, "b" is k x n or n x k.
    QSFT_CUBLAS_CHECK(
        cublasLtMatrixLayoutCreate(&plan->a, ab, key.ta ? key.k : key.m, key.ta ? key.m : key.k, key.lda));
    QSFT_CUBLAS_CHECK(
        cublasLtMatrixLayoutCreate(&plan->b, ab, key.tb ? key.n : key.k, key.tb ? key.k : key.n, key.ldb));
    QSFT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->c, ct, key.m, key.n, key.ldc));

    find_algos(*plan, key);
    if (plan->num_algos == 0) throw std::runtime_error("cuBLASLt has no algorithm for the " + describe(key));
    return *plans.emplace(key, std::move(plan)).first->second;
  }

  // Runs the plan's first algorithm that launches; one that fails is reported on stderr and skipped for good. Under
  // QSFT_SYNC_LAUNCHES / CUDA_LAUNCH_BLOCKING the GEMM is synchronised, so a fault inside it is named here.
  // D = alpha * A B + beta * C (C and D share plan.c's layout; C == D but for a residual added without a copy).
  void matmul(Plan& plan, const PlanKey& key, const void* A, const void* B, const void* C, void* D, float alpha,
              float beta) {
    std::string failures;
    for (; plan.next < plan.num_algos; ++plan.next) {
      const cublasStatus_t st =
          cublasLtMatmul(handle, plan.op, &alpha, B, plan.a, A, plan.b, &beta, C, plan.c, D, plan.c,
                         &plan.algos[plan.next], workspace, kWorkspaceBytes, as_stream(stream));
      if (st == CUBLAS_STATUS_SUCCESS) {
        if (sync_launches())
          check_cuda(cudaStreamSynchronize(as_stream(stream)), describe(key).c_str(), __FILE__, __LINE__);
        return;
      }
      failures += std::string(failures.empty() ? "" : ", ") + cublasGetStatusString(st);
      std::fprintf(stderr, "cuBLASLt: algorithm %d of %d failed (%s) for the %s\n", plan.next + 1, plan.num_algos,
                   cublasGetStatusString(st), describe(key).c_str());
    }
    throw std::runtime_error("cuBLASLt: every algorithm failed (" +
                             (failures.empty() ? std::string("on earlier calls") : failures) + ") for the " +
                             describe(key));
  }

  // op's storage as bf16: itself, or a packed bf16 copy (ld = cols) in `scratch` when it is F32.
  GemmOperand as_bf16(const GemmOperand& x, ScratchBuffer& scratch) {
    if (x.dtype == DType::BF16) return x;
    GemmOperand y{scratch.get(size_t(x.rows * x.cols) * 2 + 16), DType::BF16, x.rows, x.cols, x.cols};
    cast_f32_to_bf16_2d(static_cast<const float*>(x.data), x.rows, x.cols, x.ld, y.data, stream);
    return y;
  }
};

GemmRunner::GemmRunner(void* stream) : impl_(std::make_unique<Impl>(stream)) {}
GemmRunner::~GemmRunner() = default;
size_t GemmRunner::cached_plans() const { return impl_->plans.size(); }
int GemmRunner::scratch_grows() const { return impl_->cast_a.grow_count() + impl_->cast_b.grow_count(); }

void GemmRunner::run(const GemmOperand& A_in, bool transA, const GemmOperand& B_in, bool transB, const GemmOperand& C,
                     float alpha, float beta, const void* bias, const void* c_src) {
  const int64_t M = transA ? A_in.cols : A_in.rows, K = transA ? A_in.rows : A_in.cols;
  const int64_t N = transB ? B_in.rows : B_in.cols;
  if (M == 0 || N == 0) return;
  QSFT_CHECK(K > 0, "gemm with K = 0");
  const bool all_f32 = A_in.dtype == DType::F32 && B_in.dtype == DType::F32 && C.dtype == DType::F32;
  const GemmOperand A = all_f32 ? A_in : impl_->as_bf16(A_in, impl_->cast_a);
  const GemmOperand B = all_f32 ? B_in : impl_->as_bf16(B_in, impl_->cast_b);
  check_alignment(A, "A");
  check_alignment(B, "B");
  check_alignment(C, "C");
  const void* src = c_src ? c_src : C.data;
  if (c_src) check_alignment({const_cast<void*>(c_src), C.dtype, C.rows, C.cols, C.ld}, "C source");
  const PlanKey key{N,
                    M,
                    K,
                    B.ld,
                    A.ld,
                    C.ld,
                    transB,
                    transA,
                    bias != nullptr,
                    A.dtype,
                    C.dtype,
                    alignment_of(B.data),
                    alignment_of(A.data),
                    std::min(alignment_of(C.data), alignment_of(src))};
  Plan& plan = impl_->plan_for(key);
  if (beta == 0.0f && zero_gemm_outputs()) {
    const size_t esize = dtype_size(C.dtype);
    QSFT_CUDA_CHECK(
        cudaMemset2DAsync(C.data, size_t(C.ld) * esize, 0, size_t(N) * esize, size_t(M), as_stream(impl_->stream)));
  }
  if (bias)
    QSFT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
  impl_->matmul(plan, key, A.data, B.data, src, C.data, alpha, beta);
}

}  // namespace qsft::cuda
