// Arena: one device allocation (or one of host memory mapped for the device: MemoryKind) carved into tensors. Sizes are planned first (the same code runs in a "measure"
// pass with no memory, then for real), so nothing is allocated inside the step loop.
#pragma once
#include <cstddef>
#include <initializer_list>

#include "engine/ops.h"

namespace qsft {

class Arena {
 public:
  static constexpr size_t kAlign = 256;  // bytes; enough for vectorised CUDA loads and cuBLASLt

  // A measuring arena: take() returns tensors with no memory and only counts bytes.
  Arena() = default;
  // A real arena of `bytes` from the backend, of memory of `kind`.
  Arena(Ops& ops, size_t bytes, MemoryKind kind = MemoryKind::device)
      : ops_(&ops),
        base_(static_cast<char*>(kind == MemoryKind::device ? ops.alloc_bytes(bytes) : ops.alloc_host_mapped(bytes))),
        capacity_(bytes) {}
  ~Arena() {
    if (ops_ && base_) ops_->free_bytes(base_);
  }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  Arena(Arena&& o) noexcept { *this = std::move(o); }
  Arena& operator=(Arena&& o) noexcept {
    std::swap(ops_, o.ops_);
    std::swap(base_, o.base_);
    std::swap(capacity_, o.capacity_);
    std::swap(used_, o.used_);
    return *this;
  }

  Tensor take(DType dtype, std::initializer_list<int64_t> shape) {
    Tensor t(nullptr, dtype, shape, ops_ ? ops_->device() : Device::CPU);
    size_t bytes = (t.nbytes() + kAlign - 1) / kAlign * kAlign;
    if (base_) {
      QSFT_CHECK(used_ + bytes <= capacity_, "arena overflow: the plan and the carving disagree");
      t.data = base_ + used_;
    }
    used_ += bytes;
    return t;
  }
  size_t used() const { return used_; }
  // Carve the next tensors from offset `used` (<= used()) again, over tensors already carved there: for buffers
  // whose lifetimes do not overlap (engine/model/run_state.cpp).
  void rewind(size_t used) {
    QSFT_CHECK(used <= used_, "arena rewind beyond what is carved");
    used_ = used;
  }
  size_t capacity() const { return capacity_; }

 private:
  Ops* ops_ = nullptr;
  char* base_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;
};

}  // namespace qsft
