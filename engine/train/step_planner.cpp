#include "engine/train/step_planner.h"

#include <algorithm>

namespace qsft {

int64_t StepPlanner::steps_in_epoch(int epoch) {
  const int64_t M = micro_batches_per_step();
  return (int64_t(plan(epoch).size()) + M - 1) / M;
}

std::pair<int, int64_t> StepPlanner::locate(int64_t s) {
  int e = 0;
  while (s >= steps_in_epoch(e)) s -= steps_in_epoch(e++);
  return {e, s};
}

std::pair<int64_t, int64_t> StepPlanner::range(int64_t s, int64_t first, int64_t count) {
  auto [e, j] = locate(s);
  const int64_t size = int64_t(plan(e).size()), begin = j * micro_batches_per_step() + first;
  return {std::min(begin, size), std::min(begin + count, size)};
}

std::vector<PackedBatch> StepPlanner::batches(int64_t s) {
  const auto& p = plan(locate(s).first);
  const auto [begin, end] = range(s, first_micro_batch(), ga());
  std::vector<PackedBatch> out;
  for (int64_t i = begin; i < end; ++i) out.push_back(make_batch(data_, p[size_t(i)]));
  return out;
}

int64_t StepPlanner::step_targets(int64_t s) {
  const auto& p = plan(locate(s).first);
  const auto [begin, end] = range(s, 0, micro_batches_per_step());
  int64_t n = 0;
  for (int64_t i = begin; i < end; ++i) n += make_batch(data_, p[size_t(i)]).num_targets();
  return n;
}

double StepPlanner::epoch_progress(int64_t s) {
  auto [e, j] = locate(s);
  const int64_t micro_batches = int64_t(plan(e).size());
  return e + double(std::min((j + 1) * micro_batches_per_step(), micro_batches)) / double(micro_batches);
}

const std::vector<std::vector<uint32_t>>& StepPlanner::plan(int epoch) {
  while (int(plans_.size()) <= epoch)
    plans_.push_back(plan_epoch(data_, c_.data.max_length, c_.training.per_device_train_batch_size,
                                c_.training.micro_batch_tokens, c_.training.seed, int(plans_.size()), c_.data.packing));
  return plans_[size_t(epoch)];
}

}  // namespace qsft
