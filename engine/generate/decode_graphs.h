// Generation's decode step as a recorded graph (Ops::begin_capture), replayed step after step: on the GPU a step of
// a small model is launch-bound (~24 layers x ~12 kernels at batch 1), and one graph launch replaces its launches.
// The step (the layers, the final norm, the LM head over the new rows) reads only buffers whose addresses never
// change (the model's staged batch, the cache, the generator's step tensors), refilled before each run; what it
// launches depends on the number of rows alone (the cache capacity is fixed per Generator: the decode attention's
// splits are a function of rows and capacity), so one graph per row count.
// Per row count: the first step runs eagerly (the warm-up: scratch buffers grow, cuBLASLt plans its GEMMs), the
// second is recorded then replayed, every later one replayed. A replay the backend finds stale (a scratch moved)
// runs eagerly and records again. A failed recording turns graphs off for good, with one note on stderr.
// Off on the cpu backend (nothing to record), while profiling, and with QSFT_DECODE_GRAPHS=0 in the environment.
#pragma once
#include <functional>
#include <map>
#include <memory>

#include "engine/ops.h"

namespace qsft {

class DecodeGraphs {
 public:
  DecodeGraphs(Ops& ops, bool wanted);  // wanted && the backend records && QSFT_DECODE_GRAPHS is not "0"
  bool enabled() const { return enabled_; }
  // Runs step (device work only, the same for every call with these rows) once, as described above.
  void run(int64_t rows, const std::function<void()>& step);
  int64_t replays() const { return replays_; }  // steps run as a replay (tests)

 private:
  void record(int64_t rows, const std::function<void()>& step);  // then replays it; eagerly when recording fails

  Ops& ops_;
  bool enabled_;
  std::map<int64_t, std::unique_ptr<Ops::Graph>> graphs_;  // by rows; null: warmed up, not recorded yet
  int64_t replays_ = 0;
};

}  // namespace qsft
