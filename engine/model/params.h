// The trainable parameters of a run: named segments of one flat F32 buffer, with a gradient buffer of the same
// layout (one optimizer launch, one gradient-norm reduction, one ZeRO-1 shard map by offset). LoRA fills it with
// every adapter's A and B (LoraLayout); full fine-tuning with every weight of the model (FullLayout).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/arena.h"

namespace qsft {

// One trainable matrix [rows, cols] at `offset` floats into the flat buffer.
struct ParamSegment {
  std::string name;  // its state-dict key (PEFT's for LoRA)
  int64_t rows = 0, cols = 0;
  int64_t offset = 0;
  int64_t numel() const { return rows * cols; }
};

class ParamLayout {
 public:
  // Appends a [rows, cols] segment; returns its offset.
  int64_t add(std::string name, int64_t rows, int64_t cols);
  const std::vector<ParamSegment>& segments() const { return segments_; }
  const ParamSegment* find(std::string_view name) const;  // nullptr when absent
  int64_t num_params() const { return num_params_; }

 private:
  std::vector<ParamSegment> segments_;
  int64_t num_params_ = 0;
};

// The flat parameter and gradient buffers on the backend's device (F32 [P] each), and a copy of the parameters in
// the backend's compute dtype (BF16 on the GPU; on the CPU the parameters themselves), refreshed once after the
// parameters change (an optimizer step), not cast again before every GEMM that reads them.
class TrainableParams {
 public:
  void carve(Arena& a, int64_t num_params, DType compute, bool with_grads = true);  // without: inference
  Tensor& params() { return params_; }
  Tensor& grads() { return grads_; }
  const Tensor& compute() const { return compute_.ndim ? compute_ : params_; }  // [P], the compute dtype
  void refresh_compute(Ops& ops);  // compute copy = params, rounded
  // [rows, cols] views at `offset` floats (a ParamSegment's place): of the gradients (none without them), of the
  // compute copy.
  Tensor grad_at(int64_t offset, int64_t rows, int64_t cols) const {
    return grads_.ndim ? view(grads_, offset, rows, cols) : Tensor();
  }
  Tensor compute_at(int64_t offset, int64_t rows, int64_t cols) const {  // [rows, cols] of the compute copy
    return view(compute(), offset, rows, cols);
  }

  void upload(Ops& ops, const std::vector<float>& host);  // params from the host
  std::vector<float> download_params(Ops& ops) const;
  std::vector<float> download_grads(Ops& ops) const;

 private:
  static Tensor view(const Tensor& flat, int64_t offset, int64_t rows, int64_t cols);  // [rows, cols] at offset
  Tensor params_, grads_;
  Tensor compute_;  // [P] in the compute dtype; none (ndim 0) when that is F32
};

}  // namespace qsft
