// Which micro-batches each optimizer step takes: the epochs' plans (shuffle + packing, data/batching.h) are made
// on demand; step s takes the micro-batches [j * M, (j + 1) * M) of its epoch, M = GA x world size (the last step
// of an epoch may take fewer), and rank r trains the GA of them from j * M + r * GA: the global batch is
// per_device x GA x world, as transformers counts it, and a world of N with GA g takes the very micro-batches of a
// world of one with GA N g. A pure function of (data, config, world, step), so a resumed run needs no data position.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "data/batching.h"
#include "engine/train/train_config.h"

namespace qsft {

class StepPlanner {
 public:
  StepPlanner(const SequenceSet& data, const TrainConfig& c, int world_size = 1, int rank = 0)
      : data_(data), c_(c), world_(world_size), rank_(rank) {}
  int64_t steps_in_epoch(int epoch);
  std::pair<int, int64_t> locate(int64_t s);    // (epoch, step within it) of global step s
  std::vector<PackedBatch> batches(int64_t s);  // this rank's micro-batches of step s (maybe none)
  int64_t step_targets(int64_t s);              // trained targets of all ranks' micro-batches of step s
  int64_t micro_batches_per_step() const { return ga() * world_; }  // M
  int64_t first_micro_batch() const { return ga() * rank_; }        // this rank's first, within a step
  double epoch_progress(int64_t s);  // fractional epoch after step s, in micro-batches as transformers counts it

 private:
  int64_t ga() const { return c_.training.gradient_accumulation_steps; }
  // Plan indices [begin, end) of step s's micro-batches from `first` within the step, `count` of them.
  std::pair<int64_t, int64_t> range(int64_t s, int64_t first, int64_t count);
  const std::vector<std::vector<uint32_t>>& plan(int epoch);
  const SequenceSet& data_;
  const TrainConfig& c_;
  int world_, rank_;
  std::vector<std::vector<std::vector<uint32_t>>> plans_;
};

}  // namespace qsft
