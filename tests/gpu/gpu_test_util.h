// Helpers of the GPU tests: the CUDA backend or a skip that says why, device tensors filled from host floats
// (rounded to bf16 when the tensor is BF16, so the CPU reference sees exactly the GPU's inputs), poisoned outputs
// (all-ones bytes: NaN in F32 and BF16), and error measures per dtype. Random fills and packed-sequence layouts
// come from the CPU op tests' helpers.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/base/half.h"
#include "engine/ops.h"
#include "tests/unit/ops_test_util.h"

namespace qsft::test {

// The CUDA backend, or nullptr with the reason in *why (no device, or a build without CUDA).
inline std::unique_ptr<Ops> try_cuda_ops(std::string* why) {
  try {
    return make_cuda_ops();
  } catch (const std::exception& e) {
    *why = e.what();
    return nullptr;
  }
}

// Declares `gpu` (std::unique_ptr<Ops>) and `cpu`, or skips the test printing why there is no GPU.
#define QSFT_REQUIRE_GPU()                                                                   \
  std::string qsft_no_gpu_reason;                                                            \
  std::unique_ptr<::qsft::Ops> gpu = ::qsft::test::try_cuda_ops(&qsft_no_gpu_reason);        \
  if (!gpu) GTEST_SKIP() << "skipped: no CUDA device (" << qsft_no_gpu_reason << ")";        \
  std::unique_ptr<::qsft::Ops> cpu = ::qsft::make_cpu_ops()

inline float round_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }
inline std::vector<float> round_bf16(std::vector<float> v) {
  for (float& x : v) x = round_bf16(x);
  return v;
}
// Values as a tensor of dtype d stores them.
inline std::vector<float> as_stored(const std::vector<float>& v, DType d) {
  return d == DType::BF16 ? round_bf16(v) : v;
}

// A tensor in an Ops backend's memory (CPU or CUDA), owning it. Starts poisoned (all bytes 0xff).
class OpsTensor {
 public:
  OpsTensor(Ops& ops, DType dtype, std::initializer_list<int64_t> shape) : ops_(ops) {
    t = Tensor(nullptr, dtype, shape, ops.device());
    t.data = ops.alloc_bytes(std::max<size_t>(t.nbytes(), 1));
    poison();
  }
  OpsTensor(const OpsTensor&) = delete;
  OpsTensor& operator=(const OpsTensor&) = delete;
  ~OpsTensor() { ops_.free_bytes(t.data); }

  void poison() {
    std::vector<unsigned char> ff(t.nbytes(), 0xff);
    ops_.copy_to_device(t.data, ff.data(), ff.size());
  }
  // Float values converted to the tensor's dtype (F32, BF16).
  void set(const std::vector<float>& v) {
    ASSERT_EQ(int64_t(v.size()), t.numel());
    if (t.dtype == DType::F32) {
      ops_.copy_to_device(t.data, v.data(), v.size() * 4);
    } else {
      ASSERT_EQ(t.dtype, DType::BF16);
      std::vector<uint16_t> b(v.size());
      for (size_t i = 0; i < v.size(); ++i) b[i] = f32_to_bf16(v[i]);
      ops_.copy_to_device(t.data, b.data(), b.size() * 2);
    }
  }
  void set_i32(const std::vector<int32_t>& v) {
    ASSERT_EQ(t.dtype, DType::I32);
    ASSERT_EQ(int64_t(v.size()), t.numel());
    ops_.copy_to_device(t.data, v.data(), v.size() * 4);
  }
  std::vector<float> get() const {
    std::vector<float> v(size_t(t.numel()));
    if (t.dtype == DType::F32) {
      ops_.copy_to_host(v.data(), t.data, v.size() * 4);
    } else if (t.dtype == DType::BF16) {
      std::vector<uint16_t> b(v.size());
      ops_.copy_to_host(b.data(), t.data, b.size() * 2);
      for (size_t i = 0; i < v.size(); ++i) v[i] = bf16_to_f32(b[i]);
    } else {
      std::vector<int32_t> b(v.size());
      ops_.copy_to_host(b.data(), t.data, b.size() * 4);
      for (size_t i = 0; i < v.size(); ++i) v[i] = float(b[i]);
    }
    return v;
  }

  Tensor t;

 private:
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

// ||got - want|| / ||want||; NaN anywhere gives infinity (an unwritten or broken output).
inline double rel_l2_error(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return INFINITY;
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return den == 0.0 ? std::sqrt(num) : std::sqrt(num / den);
}

inline double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0.0, aa = 0.0, bb = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

// Relative L2 tolerance of an output stored in dtype d after fp32 math on identical inputs.
inline double tolerance(DType d) { return d == DType::BF16 ? 1e-2 : 1e-5; }

inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, double tol,
                         const std::string& what) {
  const double err = rel_l2_error(got, want);
  std::printf("[ GPU      ] %-48s rel. L2 error %.2e (tolerance %.0e)\n", what.c_str(), err, tol);
  EXPECT_LE(err, tol) << what;
}

// max |got - want| / max |want|: one wrong row among thousands hides in the relative L2 error, not here.
inline void expect_max_close(const std::vector<float>& got, const std::vector<float>& want, double tol,
                             const std::string& what) {
  double worst = got.size() == want.size() ? 0.0 : INFINITY, scale = 0.0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    if (!std::isfinite(got[i])) worst = INFINITY;
    worst = std::max(worst, std::fabs(double(got[i]) - want[i]));
    scale = std::max(scale, std::fabs(double(want[i])));
  }
  const double err = scale == 0.0 ? worst : worst / scale;
  std::printf("[ GPU      ] %-48s max abs. error / max %.2e (tolerance %.0e)\n", what.c_str(), err, tol);
  EXPECT_LE(err, tol) << what;
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
  // The GPU result against the CPU result.
  void expect_close(double tol, const std::string& what) const { test::expect_close(g.get(), c.get(), tol, what); }
  void expect_max_close(double tol, const std::string& what) const {
    test::expect_max_close(g.get(), c.get(), tol, what);
  }
};

}  // namespace qsft::test
