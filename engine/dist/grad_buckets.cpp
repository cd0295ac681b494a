#include "engine/dist/grad_buckets.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "engine/base/error.h"

namespace qsft {

int grad_final_from(const std::string& key, int num_layers) {
  const size_t at = key.find("layers.");
  if (at != std::string::npos) {
    const char *begin = key.data() + at + 7, *end = key.data() + key.size();
    int layer = -1;
    const auto [p, ec] = std::from_chars(begin, end, layer);
    if (ec == std::errc() && p != begin && p < end && *p == '.' && layer >= 0 && layer < num_layers) return layer;
  }
  if (key == "lm_head.weight" || key == "model.norm.weight") return num_layers;
  return -1;
}

namespace {

// r appended to `ranges`, joined to the last one when it continues it.
void append(std::vector<ShardRange>& ranges, ShardRange r) {
  if (!ranges.empty() && ranges.back().offset + ranges.back().count == r.offset)
    ranges.back().count += r.count;
  else
    ranges.push_back(r);
}

// A bucket's ranges in ascending order, touching ones joined (a bucket of several layers is one range).
void sort_and_join(std::vector<ShardRange>& ranges) {
  std::sort(ranges.begin(), ranges.end(), [](ShardRange a, ShardRange b) { return a.offset < b.offset; });
  std::vector<ShardRange> joined;
  for (ShardRange r : ranges) append(joined, r);
  ranges = std::move(joined);
}

}  // namespace

std::vector<GradBucket> plan_grad_buckets(const ParamLayout& layout, int num_layers, int64_t cap_bytes) {
  struct Final {
    int from;
    ShardRange range;
  };
  std::vector<Final> order;
  for (const ParamSegment& s : layout.segments())
    order.push_back({grad_final_from(s.name, num_layers), {s.offset, s.numel()}});
  std::stable_sort(order.begin(), order.end(), [](const Final& a, const Final& b) { return a.from > b.from; });
  const int64_t cap = std::max<int64_t>(cap_bytes / int64_t(sizeof(float)), 1);  // floats
  std::vector<GradBucket> buckets(1);
  int64_t filled = 0;  // floats in buckets.back()
  for (Final f : order) {
    while (f.range.count > 0) {
      if (filled == cap) {
        buckets.emplace_back();
        filled = 0;
      }
      const int64_t take = std::min(f.range.count, cap - filled);
      append(buckets.back().ranges, {f.range.offset, take});
      buckets.back().final_from = f.from;  // the smallest so far: final after the others
      filled += take;
      f.range.offset += take;
      f.range.count -= take;
    }
  }
  if (buckets.back().ranges.empty()) buckets.pop_back();
  for (GradBucket& b : buckets) sort_and_join(b.ranges);
  return buckets;
}

bool use_grad_buckets(const Comm& comm, int64_t grad_bytes) {
  const char* forced = std::getenv("QSFT_GRAD_BUCKETS");
  if (forced && *forced) {
    const std::string v = forced;
    if (v != "0" && v != "1") throw input_error("environment variable QSFT_GRAD_BUCKETS", "'" + v + "' is not 0 or 1");
    return v == "1";
  }
  return comm.world_size() > 1 && comm.overlaps() && grad_bytes >= kGradBucketsMinBytes;
}

void GradReducer::final_from(int layer) {
  for (; next_ < buckets_.size() && buckets_[next_].final_from >= layer; ++next_)
    comm_.start_reduce(grads_, buckets_[next_].ranges);
}

void GradReducer::finish() {
  final_from(-1);  // a rank without a backward this step (none of its own) starts them all here
  comm_.wait_reduces();
  next_ = 0;
}

}  // namespace qsft
