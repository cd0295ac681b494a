#include "engine/train/step_planner.h"

#include <algorithm>

namespace qsft {

int64_t StepPlanner::steps_in_epoch(int epoch) { return (int64_t(plan(epoch).size()) + ga() - 1) / ga(); }

std::pair<int, int64_t> StepPlanner::locate(int64_t s) {
  int e = 0;
  while (s >= steps_in_epoch(e)) s -= steps_in_epoch(e++);
  return {e, s};
}

std::vector<PackedBatch> StepPlanner::batches(int64_t s) {
  auto [e, j] = locate(s);
  const auto& p = plan(e);
  std::vector<PackedBatch> out;
  for (int64_t i = j * ga(); i < std::min<int64_t>((j + 1) * ga(), int64_t(p.size())); ++i)
    out.push_back(make_batch(data_, p[size_t(i)]));
  return out;
}

double StepPlanner::epoch_progress(int64_t s) {
  auto [e, j] = locate(s);
  const int64_t micro_batches = int64_t(plan(e).size());
  return e + double(std::min((j + 1) * ga(), micro_batches)) / double(micro_batches);
}

const std::vector<std::vector<uint32_t>>& StepPlanner::plan(int epoch) {
  while (int(plans_.size()) <= epoch)
    plans_.push_back(plan_epoch(data_, c_.data.max_length, c_.training.per_device_train_batch_size,
                                c_.training.micro_batch_tokens, c_.training.seed, int(plans_.size()), c_.data.packing));
  return plans_[size_t(epoch)];
}

}  // namespace qsft
