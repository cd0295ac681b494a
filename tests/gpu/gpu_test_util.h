// Helpers of the GPU tests: the CUDA backend or a skip that says why, device tensors filled from host floats
// (rounded to bf16 when the tensor is BF16, so the CPU reference sees exactly the GPU's inputs), poisoned outputs
// (all-ones bytes: NaN in F32 and BF16), and error measures per dtype. Random fills and packed-sequence layouts
// come from the CPU op tests' helpers. In stand-in mode (tests/gpu/standin_ops.h: no GPU, QSFT_GPU_STANDIN=1) `gpu`
// is the host stand-in and the comparison helpers compare and print nothing.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/base/half.h"
#include "engine/ops.h"
#include "tests/gpu/standin_ops.h"
#include "tests/unit/ops_test_util.h"

namespace qsft::test {

// The CUDA backend (the stand-in in stand-in mode), or nullptr with the reason in *why (no device, a build without
// CUDA, or a device left unusable by a fault in an earlier test of this process: CUDA errors such as
// cudaErrorIllegalAddress are sticky).
inline std::unique_ptr<Ops> try_cuda_ops(std::string* why) {
  if (standin_mode()) return make_standin_ops();
  try {
    return make_cuda_ops();
  } catch (const std::exception& e) {
    *why = e.what();
    return nullptr;
  }
}

// An environment variable set to anything but "" or "0".
inline bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}
// QSFT_REQUIRE_GPU=1 in the environment (tools/gpu-check.sh sets it): a missing GPU fails instead of skipping.
inline bool gpu_required() { return env_flag("QSFT_REQUIRE_GPU"); }
// QSFT_GPU_TEST_SMALL=1 (tools/gpu-check.sh's compute-sanitizer stages, where kernels run 10-1000x slower): tests
// leave out their large shapes, which the plain test-* stages check.
inline bool small_shapes_only() { return env_flag("QSFT_GPU_TEST_SMALL"); }

// In a check's message (EXPECT_...() << kHostCheck << ...): the check is on host logic (e.g. how many decode steps
// were replayed), so it counts in stand-in mode too, where checks of computed values do not.
constexpr const char* kHostCheck = "[host logic] ";

// The index of the first i in [0, n) where ok(i) is false, or -1: an element-by-element check reports its first
// mismatch once (EXPECT_EQ(first_failing(n, ok), -1)), neither one line per element nor with an ASSERT that ends
// the test there (a stand-in run goes on past values it never computed; a GPU run checks the rest too).
template <class Ok>
int64_t first_failing(int64_t n, Ok ok) {
  for (int64_t i = 0; i < n; ++i)
    if (!ok(i)) return i;
  return -1;
}

// n values uniform in [lo, hi] from a hash of (seed, index) (splitmix64), filled in parallel: a 152064 x 3584
// embedding table in well under a second, where std::mt19937 takes ~10 s.
inline std::vector<float> hashed_uniform(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(n);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < int64_t(n); ++i) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + uint64_t(i) * 0xBF58476D1CE4E5B9ull + 1;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    v[size_t(i)] = lo + (hi - lo) * float(z >> 40) * 0x1p-24f;  // 24 random bits: [0, 1) exactly in fp32
  }
  return v;
}

// Declares `gpu` (std::unique_ptr<Ops>) and `cpu`. Without a CUDA device the test is skipped saying why (a failure
// when QSFT_REQUIRE_GPU=1); with a device whose backend cannot start (e.g. after a fault in an earlier test of the
// same binary) it fails: a broken GPU is never reported as a skip.
#define QSFT_REQUIRE_GPU()                                                            \
  std::string qsft_no_gpu_reason;                                                     \
  std::unique_ptr<::qsft::Ops> gpu = ::qsft::test::try_cuda_ops(&qsft_no_gpu_reason); \
  if (!gpu && (::qsft::cuda_available() || ::qsft::test::gpu_required()))             \
    FAIL() << "the CUDA backend did not start (" << qsft_no_gpu_reason << ")";        \
  if (!gpu) GTEST_SKIP() << "skipped: no CUDA device (" << qsft_no_gpu_reason << ")"; \
  std::unique_ptr<::qsft::Ops> cpu = ::qsft::make_cpu_ops()

// A test of the CUDA backend's own behaviour (its errors, a cudart call): skipped in stand-in mode, saying why.
#define QSFT_SKIP_ON_STANDIN(why) \
  if (::qsft::test::standin_mode()) GTEST_SKIP() << "skipped on the stand-in backend: " << why

inline float round_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }
// The conversions below run in parallel: the 7B-size inputs (a 152064 x 3584 table) take seconds in one thread.
inline std::vector<float> round_bf16(std::vector<float> v) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < int64_t(v.size()); ++i) v[size_t(i)] = round_bf16(v[size_t(i)]);
  return v;
}
// Values as a tensor of dtype d stores them.
inline std::vector<float> as_stored(const std::vector<float>& v, DType d) {
  return d == DType::BF16 ? round_bf16(v) : v;
}

// A tensor in an Ops backend's memory (CPU or CUDA; device memory, or host memory mapped for the device), owning
// it. Starts poisoned (all bytes 0xff).
class OpsTensor {
 public:
  OpsTensor(Ops& ops, DType dtype, std::initializer_list<int64_t> shape, MemoryKind kind = MemoryKind::device)
      : ops_(ops) {
    t = Tensor(nullptr, dtype, shape, ops.device());
    const size_t bytes = std::max<size_t>(t.nbytes(), 1);
    t.data = kind == MemoryKind::device ? ops.alloc_bytes(bytes) : ops.alloc_host_mapped(bytes);
    poison();
  }
  OpsTensor(const OpsTensor&) = delete;
  OpsTensor& operator=(const OpsTensor&) = delete;
  ~OpsTensor() { ops_.free_bytes(t.data); }

  void poison() {
    std::vector<unsigned char> ff(t.nbytes(), 0xff);
    ops_.copy_to_device(t.data, ff.data(), ff.size());
  }
  // Float values converted to the tensor's dtype (F32, BF16). A wrong count or dtype is the test's bug: it throws
  // (and so fails the test in stand-in mode too).
  void set(const std::vector<float>& v) {
    expect_values(v.size(), {DType::F32, DType::BF16});
    if (t.dtype == DType::F32) {
      ops_.copy_to_device(t.data, v.data(), v.size() * 4);
    } else {
      std::vector<uint16_t> b(v.size());
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < int64_t(v.size()); ++i) b[size_t(i)] = f32_to_bf16(v[size_t(i)]);
      ops_.copy_to_device(t.data, b.data(), b.size() * 2);
    }
  }
  void set_i32(const std::vector<int32_t>& v) {
    expect_values(v.size(), {DType::I32});
    ops_.copy_to_device(t.data, v.data(), v.size() * 4);
  }
  std::vector<float> get() const {
    std::vector<float> v(size_t(t.numel()));
    if (t.dtype == DType::F32) {
      ops_.copy_to_host(v.data(), t.data, v.size() * 4);
    } else if (t.dtype == DType::BF16) {
      std::vector<uint16_t> b(v.size());
      ops_.copy_to_host(b.data(), t.data, b.size() * 2);
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < int64_t(v.size()); ++i) v[size_t(i)] = bf16_to_f32(b[size_t(i)]);
    } else {
      std::vector<int32_t> b(v.size());
      ops_.copy_to_host(b.data(), t.data, b.size() * 4);
      for (size_t i = 0; i < v.size(); ++i) v[i] = float(b[i]);
    }
    return v;
  }

  Tensor t;

 private:
  void expect_values(size_t n, std::initializer_list<DType> dtypes) const {
    if (int64_t(n) != t.numel() || std::find(dtypes.begin(), dtypes.end(), t.dtype) == dtypes.end())
      throw std::logic_error("test bug: " + std::to_string(n) + " values set into a " + dtype_name(t.dtype) + " " +
                             t.shape_str());
  }
  Ops& ops_;
};

// A Packing (tests/unit/ops_test_util.h) in one backend's memory.
struct OpsLayout {
  OpsLayout(Ops& ops, const std::vector<int>& lengths)
      : packing(lengths),
        total(packing.tokens()),
        positions(ops, DType::I32, {total}),
        cu(ops, DType::I32, {packing.sequences() + 1}) {
    positions.set_i32(packing.positions);
    cu.set_i32(packing.cu_seqlens);
    seq = SeqLayout{positions.t, cu.t, packing.sequences(), packing.max_len};
  }
  Packing packing;
  int64_t total;
  OpsTensor positions, cu;
  SeqLayout seq;
};

// How far a GPU result is from the CPU reference. NaN or infinity anywhere in got (an unwritten or broken output)
// makes every measure the worst value.
struct ErrorMeasures {
  double max_abs = 0.0;  // max |got - want|
  double max_ref = 0.0;  // max |want| (the scale of max_abs)
  double rel_l2 = 0.0;   // ||got - want|| / ||want|| (the absolute L2 when want is 0)
  double cosine = 1.0;   // <got, want> / (||got|| ||want||); 1 when both are 0
};

inline ErrorMeasures measure(const std::vector<float>& got, const std::vector<float>& want) {
  ErrorMeasures m;
  if (got.size() != want.size()) return {INFINITY, 0.0, INFINITY, -1.0};
  double num = 0.0, ww = 0.0, gg = 0.0, gw = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return {INFINITY, m.max_ref, INFINITY, -1.0};
    const double g = got[i], w = want[i];
    m.max_abs = std::max(m.max_abs, std::fabs(g - w));
    m.max_ref = std::max(m.max_ref, std::fabs(w));
    num += (g - w) * (g - w);
    ww += w * w;
    gg += g * g;
    gw += g * w;
  }
  m.rel_l2 = ww == 0.0 ? std::sqrt(num) : std::sqrt(num / ww);
  m.cosine = ww == 0.0 && gg == 0.0 ? 1.0 : (ww == 0.0 || gg == 0.0 ? 0.0 : gw / std::sqrt(ww * gg));
  return m;
}

inline double rel_l2_error(const std::vector<float>& got, const std::vector<float>& want) {
  return measure(got, want).rel_l2;
}
inline double cosine(const std::vector<float>& a, const std::vector<float>& b) { return measure(a, b).cosine; }

// Relative L2 tolerance of an output stored in dtype d after fp32 math on identical inputs.
inline double tolerance(DType d) { return d == DType::BF16 ? 1e-2 : 1e-5; }

// A whole bf16 training step's gradients (tests/gpu/gpu_model_step_test.cpp, gpu_full_ft_step_test.cpp) against the
// fp32 CPU step on the fixtures. Set from torch's own bf16 forward/backward of the same fixtures and batches against
// float64 (tests/gpu/bf16_grad_noise.py, torch 2.15 on the CPU, 3 draws of B per LoRA case): worst rel. L2 error
// 4.6e-2 (LoRA, bf16 base + fp32 adapter), 5.0e-2 (all bf16), 3.6e-2 (full fine-tuning); worst cosine 0.99900,
// 0.99877, 0.99936. Our first GPU run gave 2.5e-2 / 0.99969 (LoRA, tied) and 2.7e-2 / 0.99965 (full FT, tied).
// A real fault (a dropped sequence or head, a wrong scaling, transpose or RoPE) moves a gradient by O(10%) or more.
constexpr double kBf16StepGradRelL2 = 6e-2, kBf16StepGradCosine = 0.998;

// The prefix of the tests' lines of measured values: "[ GPU      ]" (tools/gpu-check.sh collects those lines), or
// "[ STAND-IN ]" in stand-in mode, where nothing was computed.
inline const char* measured_tag() { return standin_mode() ? "[ STAND-IN ]" : "[ GPU      ]"; }

// One line per compared output (tools/gpu-check.sh collects them into accuracy.txt): every measure, then the one
// checked against the tolerance.
inline void print_measures(const std::string& what, const ErrorMeasures& m, const char* checked, double value,
                           double tol) {
  if (standin_mode()) return;  // nothing was computed
  std::printf("[ GPU      ] %-56s max|err| %.2e (max|ref| %.2e)  rel.L2 %.2e  cos %.6f  | %s %.2e <= %.0e %s\n",
              what.c_str(), m.max_abs, m.max_ref, m.rel_l2, m.cosine, checked, value, tol,
              value <= tol ? "ok" : "FAILED");
}

// The relative L2 error is checked.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, double tol,
                         const std::string& what) {
  if (standin_mode()) return;
  const ErrorMeasures m = measure(got, want);
  print_measures(what, m, "rel.L2", m.rel_l2, tol);
  EXPECT_LE(m.rel_l2, tol) << what;
}

// max |got - want| / max |want| is checked: one wrong row among thousands hides in the relative L2 error, not here.
inline void expect_max_close(const std::vector<float>& got, const std::vector<float>& want, double tol,
                             const std::string& what) {
  if (standin_mode()) return;
  const ErrorMeasures m = measure(got, want);
  const double err = m.max_ref == 0.0 ? m.max_abs : m.max_abs / m.max_ref;
  print_measures(what, m, "max|err|/max|ref|", err, tol);
  EXPECT_LE(err, tol) << what;
}

// The GPU result of `what`, read back. A CUDA fault in any kernel queued before the read surfaces here: the error
// then names the op whose output was being read (the first candidate; CUDA_LAUNCH_BLOCKING=1 names the kernel).
inline std::vector<float> read_gpu_result(const OpsTensor& t, const std::string& what) {
  try {
    return t.get();
  } catch (const std::exception& e) {
    throw std::runtime_error("CUDA error reading the result of " + what +
                             " (a fault in this op or one queued before it): " + e.what());
  }
}

// One input or output on both backends: F32 on the CPU, `dtype` on the GPU, holding the same stored values
// (values given are rounded to the GPU's dtype first). Without values both start poisoned.
struct Both {
  OpsTensor c, g;
  Both(Ops& cpu, Ops& gpu, DType dtype, std::initializer_list<int64_t> shape)
      : c(cpu, dtype == DType::I32 ? DType::I32 : DType::F32, shape), g(gpu, dtype, shape) {}
  Both(Ops& cpu, Ops& gpu, DType dtype, std::initializer_list<int64_t> shape, const std::vector<float>& values)
      : Both(cpu, gpu, dtype, shape) {
    c.set(as_stored(values, dtype));
    g.set(values);
  }
  // The GPU result against the CPU result; `what` names the op, the shape is appended.
  void expect_close(double tol, const std::string& what) const {
    const std::string w = what + " " + g.t.shape_str();
    test::expect_close(read_gpu_result(g, w), c.get(), tol, w);
  }
  void expect_max_close(double tol, const std::string& what) const {
    const std::string w = what + " " + g.t.shape_str();
    test::expect_max_close(read_gpu_result(g, w), c.get(), tol, w);
  }
};

}  // namespace qsft::test
