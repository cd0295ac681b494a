// Which micro-batches each optimizer step takes: the epochs' plans (shuffle + packing, data/batching.h) are made
// on demand; step s takes micro-batches [j * GA, (j + 1) * GA) of its epoch (the last step of an epoch may take
// fewer). A pure function of (data, config, step), so a resumed run needs no data position.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "data/batching.h"
#include "engine/train/train_config.h"

namespace qsft {

class StepPlanner {
 public:
  StepPlanner(const SequenceSet& data, const TrainConfig& c) : data_(data), c_(c) {}
  int64_t steps_in_epoch(int epoch);
  std::pair<int, int64_t> locate(int64_t s);  // (epoch, step within it) of global step s
  std::vector<PackedBatch> batches(int64_t s);
  double epoch_progress(int64_t s);  // fractional epoch after step s, in micro-batches as transformers counts it

 private:
  int64_t ga() const { return c_.training.gradient_accumulation_steps; }
  const std::vector<std::vector<uint32_t>>& plan(int epoch);
  const SequenceSet& data_;
  const TrainConfig& c_;
  std::vector<std::vector<std::vector<uint32_t>>> plans_;
};

}  // namespace qsft
