// Op-family timing on the GPU for QSFT_PROFILE=1 (Ops::profile_report): a pair of CUDA events recorded on the
// stream around each op, resolved in batches (no synchronisation inside the step; collect() waits for the
// events it reads). Plain C++ declarations: the stream is a void* cudaStream_t.
#pragma once
#include <memory>

namespace qsft::cuda {

class FamilyTimer {
 public:
  FamilyTimer(void* stream, int num_slots);
  ~FamilyTimer();
  FamilyTimer(const FamilyTimer&) = delete;
  FamilyTimer& operator=(const FamilyTimer&) = delete;

  void begin(int slot);  // records a start event for slot
  void end(int slot);    // records the matching end event
  // ms[slot] = total milliseconds of every pair recorded so far (waits for the recorded events).
  void collect(double* ms);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qsft::cuda
