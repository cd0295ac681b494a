#include "engine/model/params.h"

namespace qsft {

int64_t ParamLayout::add(std::string name, int64_t rows, int64_t cols) {
  const int64_t offset = num_params_;
  segments_.push_back({std::move(name), rows, cols, offset});
  num_params_ += rows * cols;
  return offset;
}

const ParamSegment* ParamLayout::find(std::string_view name) const {
  for (const ParamSegment& s : segments_)
    if (s.name == name) return &s;
  return nullptr;
}

void TrainableParams::carve(Arena& a, int64_t num_params, DType compute, bool with_grads) {
  params_ = a.take(DType::F32, {num_params});
  if (with_grads) grads_ = a.take(DType::F32, {num_params});
  if (compute != DType::F32) compute_ = a.take(compute, {num_params});
}

void TrainableParams::refresh_compute(Ops& ops) {
  if (compute_.ndim) ops.cast(params_, compute_);
}

Tensor TrainableParams::view(const Tensor& flat, int64_t offset, int64_t rows, int64_t cols) {
  QSFT_CHECK(offset >= 0 && offset + rows * cols <= flat.numel(), "parameter segment outside the buffer");
  char* base = static_cast<char*>(flat.data);
  return Tensor(base ? base + size_t(offset) * dtype_size(flat.dtype) : nullptr, flat.dtype, {rows, cols}, flat.device);
}

void TrainableParams::upload(Ops& ops, const std::vector<float>& host) {
  QSFT_CHECK(int64_t(host.size()) == params_.numel(), "trainable parameter count");
  ops.copy_to_device(params_.data, host.data(), host.size() * 4);
}

static std::vector<float> to_host(Ops& ops, const Tensor& t) {
  std::vector<float> h(size_t(t.numel()));
  ops.copy_to_host(h.data(), t.data, h.size() * 4);
  return h;
}
std::vector<float> TrainableParams::download_params(Ops& ops) const { return to_host(ops, params_); }
std::vector<float> TrainableParams::download_grads(Ops& ops) const { return to_host(ops, grads_); }

}  // namespace qsft
