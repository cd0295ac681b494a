// Helpers shared by the op tests (tests/unit/ops_*_test.cpp): host buffers seen as Tensors and poisoned with NaN
// so unwritten outputs show, seeded random fills, packed-sequence layouts, closeness checks, and the directional
// finite-difference check every backward is tested with.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

#include "engine/ops.h"

namespace qsft::test {

// Host memory viewed as a Tensor of the given shape; F32 starts as NaN, I32 as a huge value.
template <class T>
class HostTensor {
 public:
  explicit HostTensor(std::initializer_list<int64_t> shape) : t(nullptr, dtype_of<T>(), shape) {
    const T poison = std::is_floating_point_v<T> ? std::numeric_limits<T>::quiet_NaN() : std::numeric_limits<T>::max();
    data_.assign(size_t(t.numel()), poison);
    t.data = data_.data();
  }
  HostTensor(const HostTensor&) = delete;
  HostTensor& operator=(const HostTensor&) = delete;

  size_t size() const { return data_.size(); }
  T* data() { return data_.data(); }
  T& operator[](size_t i) { return data_[i]; }
  const std::vector<T>& values() const { return data_; }
  void set(const std::vector<T>& values) {
    ASSERT_EQ(values.size(), data_.size());
    std::copy(values.begin(), values.end(), data_.begin());
  }

  Tensor t;

 private:
  std::vector<T> data_;
};
using F32 = HostTensor<float>;
using I32 = HostTensor<int32_t>;

// n values uniform in [lo, hi): fresh random inputs, never zeros.
inline std::vector<float> random_uniform(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Sequences of the given lengths packed back to back: each token's position in its sequence, the cu_seqlens
// offsets (one more than the sequences) and the longest length.
struct Packing {
  explicit Packing(const std::vector<int>& lengths) {
    for (int l : lengths) {
      for (int p = 0; p < l; ++p) positions.push_back(p);
      cu_seqlens.push_back(cu_seqlens.back() + l);
      max_len = std::max(max_len, l);
    }
  }
  int64_t tokens() const { return int64_t(positions.size()); }
  int sequences() const { return int(cu_seqlens.size()) - 1; }

  std::vector<int32_t> positions, cu_seqlens{0};
  int max_len = 0;
};

// A Packing in host tensors.
struct PackedLayout {
  explicit PackedLayout(const std::vector<int>& lengths)
      : packing(lengths), total(packing.tokens()), positions({total}), cu_seqlens({packing.sequences() + 1}) {
    positions.set(packing.positions);
    cu_seqlens.set(packing.cu_seqlens);
    seq = SeqLayout{positions.t, cu_seqlens.t, packing.sequences(), packing.max_len};
  }
  Packing packing;
  int64_t total;
  I32 positions, cu_seqlens;
  SeqLayout seq;
};

// Every element of got within atol + rtol * |want|; reports the worst element.
inline void expect_all_close(const std::vector<float>& got, const std::vector<double>& want, double atol, double rtol,
                             const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst = 0.0;
  size_t worst_i = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double excess = std::fabs(double(got[i]) - want[i]) - (atol + rtol * std::fabs(want[i]));
    if (!(excess <= worst)) {  // NaN counts as the worst
      worst = std::isnan(excess) ? std::numeric_limits<double>::infinity() : excess;
      worst_i = i;
    }
  }
  EXPECT_LE(worst, 0.0) << what << ": element " << worst_i << " is " << got[worst_i] << ", expected " << want[worst_i];
}

inline std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// Directional finite-difference check of a backward. With L(x) = <dy, f(x)> (in double) and random directions u:
//   fd = (L(x + eps u) - L(x - eps u)) / (2 eps)   vs   an = <grad, u>,   grad = the backward's dL/dx.
// Returns the worst relative error |fd - an| / max(|fd|, |an|) over the directions.
using OpFunction = std::function<std::vector<float>(const std::vector<float>& x)>;
inline double directional_fd_error(const OpFunction& f, const std::vector<float>& x, const std::vector<float>& dy,
                                   const std::vector<float>& grad, float eps = 1e-2f, int directions = 3,
                                   uint32_t seed = 7) {
  std::mt19937 rng(seed);
  auto loss = [&](const std::vector<float>& at) {
    const std::vector<float> y = f(at);
    double s = 0.0;
    for (size_t i = 0; i < y.size(); ++i) s += double(dy[i]) * y[i];
    return s;
  };
  double worst = 0.0;
  for (int d = 0; d < directions; ++d) {
    const std::vector<float> u = random_uniform(x.size(), rng);
    std::vector<float> plus = x, minus = x;
    double analytic = 0.0;
    for (size_t i = 0; i < x.size(); ++i) {
      plus[i] += eps * u[i];
      minus[i] -= eps * u[i];
      analytic += double(grad[i]) * u[i];
    }
    const double numeric = (loss(plus) - loss(minus)) / (2.0 * double(eps));
    const double err = std::fabs(numeric - analytic) / std::max({std::fabs(numeric), std::fabs(analytic), 1e-30});
    worst = std::max(worst, std::isnan(err) ? std::numeric_limits<double>::infinity() : err);
  }
  return worst;
}

// Checks a measured finite-difference error against its tolerance and prints it (the report quotes these).
inline void expect_fd_ok(double err, double tol, const char* what) {
  std::printf("[ FD       ] %-28s relative error %.2e (tolerance %.0e)\n", what, err, tol);
  EXPECT_LT(err, tol) << what;
}

}  // namespace qsft::test
