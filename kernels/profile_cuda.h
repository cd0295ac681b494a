// Op timing on the GPU for QSFT_PROFILE=1 (Ops::profile_report): a pair of CUDA events recorded on the stream
// around each op (and around a GEMM-like op's work inside it: spans nest), summed per slot (engine/op_profile.h)
// and resolved in batches (no synchronisation inside the step; collect() waits for the events it reads). Plain
// C++ declarations: the stream is a void* cudaStream_t.
#pragma once
#include <memory>
#include <vector>

namespace qsft::cuda {

class SpanTimer {
 public:
  explicit SpanTimer(void* stream);
  ~SpanTimer();
  SpanTimer(const SpanTimer&) = delete;
  SpanTimer& operator=(const SpanTimer&) = delete;

  void begin(int slot);  // records a start event for slot
  void end(int slot);    // records the end event of the innermost open span, when it is slot's
  // Total milliseconds per slot of every span recorded so far (waits for the recorded events); slots never
  // begun read 0.
  std::vector<double> collect();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qsft::cuda
