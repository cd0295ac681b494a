// Gradient buckets reduced during the backward of a step's last micro-batch, beside the compute (issue 15;
// docs/multi-gpu.md "Gradient buckets").
//
// When each gradient is final: the backward passes the LM head and the final norm first, then layers L-1 ... 0,
// the embedding last (Qwen2Decoder::loss_and_backward, GradsFinalFn). A segment of the flat gradient buffer
// (ParamLayout) is final, by its state-dict key: "...layers.{l}...." after layer l (LoRA's A and B, a layer's
// weights, norms and biases, wherever the layout puts them), "lm_head.weight" and "model.norm.weight" after the
// head, anything else only at the end: the embedding, which the backward adds into last (and into which a tied LM
// head adds first).
//
// Buckets: the segments in the order they become final (by offset within a layer), cut into buckets of `cap`
// bytes (a segment split where a bucket fills), each a list of ranges of the buffer; a bucket starts
// (Comm::start_reduce) once the backward has passed its last segment, so every rank starts the same buckets in the
// same order. They cover the buffer once: after the last, each rank's shard holds what reduce_scatter leaves (bit
// for bit on MPI, which sums each element in rank order).
//
// When they pay (use_grad_buckets): only a Comm that reduces beside the compute (NCCL) gains, by the reduce time
// of all but the last buckets; below kGradBucketsMinBytes of gradients that is < ~1 ms a step on NVLink (the
// numbers: docs/multi-gpu.md), so one reduce-scatter after the backward stays. QSFT_GRAD_BUCKETS=1 / 0 forces
// the buckets on / off (tests: MPI reduces each bucket at once, to the same sums).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/dist/comm.h"
#include "engine/model/params.h"

namespace qsft {

struct GradBucket {
  int final_from = -1;             // started when the backward says layer final_from is done (GradsFinalFn)
  std::vector<ShardRange> ranges;  // of the flat buffer: ascending, disjoint, not touching
};

// The layer after whose backward the gradient of the segment named `key` is final: num_layers after the head,
// -1 at the end (see above).
int grad_final_from(const std::string& key, int num_layers);

// The buckets of `layout`'s buffer, of at most cap_bytes each (F32 gradients), in the order they start.
std::vector<GradBucket> plan_grad_buckets(const ParamLayout& layout, int num_layers, int64_t cap_bytes);

inline constexpr int64_t kGradBucketsMinBytes = int64_t(512) << 20;

// Buckets or one reduce-scatter: QSFT_GRAD_BUCKETS when set (1 / 0), else buckets when the world has several
// ranks, the Comm overlaps (NCCL) and the gradients take >= kGradBucketsMinBytes.
bool use_grad_buckets(const Comm& comm, int64_t grad_bytes);

// Reduces the gradient buffer bucket by bucket: final_from(l) from the last micro-batch's backward (GradsFinalFn)
// starts the buckets that are final, finish() the rest and waits for all (the optimizer's step may follow).
class GradReducer {
 public:
  GradReducer(Comm& comm, Tensor& grads, std::vector<GradBucket> buckets)
      : comm_(comm), grads_(grads), buckets_(std::move(buckets)) {}
  void final_from(int layer);
  void finish();
  size_t num_buckets() const { return buckets_.size(); }

 private:
  Comm& comm_;
  Tensor& grads_;
  std::vector<GradBucket> buckets_;
  size_t next_ = 0;  // the first bucket not started this step
};

}  // namespace qsft
