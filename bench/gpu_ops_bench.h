// What gpu_ops_bench's files share (bench/gpu_ops_bench.cpp, bench/gpu_ops_ce.cpp): random device buffers, the
// CUDA-event timer with the L2 flushed, the ceilings measured at the start and the table's rows.
#pragma once
#if defined(QSFT_HAVE_CUDA)
#include <algorithm>
#include <functional>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "engine/base/half.h"
#include "engine/ops.h"
#include "kernels/runtime_cuda.h"

namespace qsft {

// A device tensor owned by the bench, filled with random values (never zeros: see METHOD.md).
class Buf {
 public:
  Buf(Ops& ops, DType dt, std::initializer_list<int64_t> shape, std::mt19937& rng) : ops_(ops) {
    t = Tensor(nullptr, dt, shape, Device::CUDA);
    t.data = ops.alloc_bytes(t.nbytes());
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    if (dt == DType::BF16) {
      std::vector<uint16_t> h(size_t(t.numel()));
      for (auto& x : h) x = f32_to_bf16(dist(rng));
      ops.copy_to_device(t.data, h.data(), t.nbytes());
    } else if (dt == DType::F32) {
      std::vector<float> h(size_t(t.numel()));
      for (auto& x : h) x = dist(rng) * 0.01f;
      ops.copy_to_device(t.data, h.data(), t.nbytes());
    }
  }
  ~Buf() { ops_.free_bytes(t.data); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  void set_i32(const std::vector<int32_t>& v) { ops_.copy_to_device(t.data, v.data(), v.size() * 4); }
  Tensor t;

 private:
  Ops& ops_;
};

// Median device seconds of fn over `reps` repeats after 2 warm-up runs, each repeat timed alone by CUDA events
// after the L2 is flushed. The events go on the legacy default stream, which orders with the backend's blocking
// stream (kernels/runtime_cuda.h): start waits for the flush, stop for fn's work.
inline double median_seconds(Ops& ops, const std::function<void()>& fn, int reps = 7) {
  static constexpr int64_t kFlushBytes = int64_t(256) << 20;  // > 5x the H100/H200 L2 (50 MB)
  static Tensor flush = [&ops] {
    Tensor t(nullptr, DType::I32, {kFlushBytes / 4}, Device::CUDA);
    t.data = ops.alloc_bytes(t.nbytes());
    return t;
  }();
  for (int i = 0; i < 2; ++i) fn();
  cuda::EventTimer timer;
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    ops.zero(flush);
    timer.start();
    fn();
    t.push_back(timer.stop_ms() * 1e-3);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Ceilings {
  double tflops, gbps, memcpy_gbps, kernel_gbps;  // gbps: the faster copy
};

struct Row {
  std::string op, shape;
  int64_t T;
  double ms, rate;  // rate: TFLOP/s or GB/s
  bool flops;
  double fraction;
  double in_bytes = 0;  // memory-bound rows: the bytes the op reads
};

constexpr double kL2Bytes = 50.0 * (1 << 20);  // H100/H200
// A memory-bound row is judged against the copy ceiling only when its inputs exceed twice the L2.
inline bool judged(const Row& r) { return !r.flops && r.in_bytes > 2 * kL2Bytes; }

// Prints a row of the table and keeps it for the memory-bound summary at the end.
void print_row(const Row& r);

// The LM head + cross-entropy at the 7B shape with every row pass of kernels/dev/cross_entropy (gpu_ops_ce.cpp).
void bench_lm_head_ce(Ops& ops, const Ceilings& ceil, std::mt19937& rng);

}  // namespace qsft
#endif
