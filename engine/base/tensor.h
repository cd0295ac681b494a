// Tensor: a typed, row-major view of memory owned elsewhere (an arena, an mmap, a std::vector). The trailing
// dimensions are always packed; the first may have a row stride (a column slice of a wider matrix, e.g. the q part
// of a fused [T, (n + 2 nkv) D] QKV output). Ops that need packed memory check contiguous().
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "engine/base/error.h"

namespace qsft {

enum class DType : uint8_t { F32, BF16, F16, I32, I64, U8 };  // U8: packed 4-bit codes (kernels/nf4.h), 8-bit state
enum class Device : uint8_t { CPU, CUDA };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32:
    case DType::I32: return 4;
    case DType::BF16:
    case DType::F16: return 2;
    case DType::I64: return 8;
    case DType::U8: return 1;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
  }
  return "?";
}

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::F32;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::I32;
}
template <>
constexpr DType dtype_of<int64_t>() {
  return DType::I64;
}
template <>
constexpr DType dtype_of<uint8_t>() {
  return DType::U8;
}

struct Tensor {
  static constexpr int kMaxDims = 4;
  void* data = nullptr;
  DType dtype = DType::F32;
  Device device = Device::CPU;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};
  int64_t row_stride = 0;  // elements between consecutive rows of dimension 0; 0 = packed

  Tensor() = default;
  Tensor(void* d, DType t, std::initializer_list<int64_t> dims, Device dev = Device::CPU)
      : data(d), dtype(t), device(dev), ndim(int(dims.size())) {
    QSFT_CHECK(dims.size() <= kMaxDims, "too many dimensions");
    int i = 0;
    for (int64_t s : dims) shape[i++] = s;
  }

  int64_t dim(int i) const { return shape[i < 0 ? ndim + i : i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  // Bytes of a packed tensor (a strided view has no single extent: it must not be copied or zeroed as a block).
  size_t nbytes() const {
    QSFT_CHECK(contiguous(), "a strided view has no contiguous byte size");
    return size_t(numel()) * dtype_size(dtype);
  }
  bool empty() const { return data == nullptr; }
  int64_t row_elems() const { return ndim == 0 || shape[0] == 0 ? 0 : numel() / shape[0]; }  // elements per row
  int64_t stride0() const { return row_stride ? row_stride : row_elems(); }  // elements from a row to the next
  bool contiguous() const { return row_stride == 0 || row_stride == row_elems(); }

  // Typed pointer; checks the dtype so that a float* is never read as bf16 by mistake.
  template <class T>
  T* as() const {
    QSFT_CHECK(dtype == dtype_of<T>(), std::string("tensor is ") + dtype_name(dtype));
    return static_cast<T*>(data);
  }
  float* f32() const { return as<float>(); }
  int32_t* i32() const { return as<int32_t>(); }

  // Rows [r0, r1) of the first dimension, same trailing shape and row stride.
  Tensor rows(int64_t r0, int64_t r1) const {
    Tensor t = *this;
    t.shape[0] = r1 - r0;
    t.data = static_cast<char*>(data) + size_t(r0) * size_t(stride0()) * dtype_size(dtype);
    return t;
  }
  // Columns [c0, c1) of a matrix [rows, cols]: a strided view of the same rows.
  Tensor cols(int64_t c0, int64_t c1) const {
    QSFT_CHECK(ndim == 2 && 0 <= c0 && c0 <= c1 && c1 <= shape[1], "cols() of " + shape_str());
    Tensor t = *this;
    t.shape[1] = c1 - c0;
    t.row_stride = stride0();
    t.data = static_cast<char*>(data) + size_t(c0) * dtype_size(dtype);
    return t;
  }
  // The same memory seen with another shape of equal element count. A strided view may regroup its trailing
  // dimensions only (dims[0] is its row count; the row stride is kept).
  Tensor view(std::initializer_list<int64_t> dims) const {
    Tensor t(data, dtype, dims, device);
    QSFT_CHECK(t.numel() == numel(), "view changes the element count");
    if (!contiguous()) {
      QSFT_CHECK(t.shape[0] == shape[0], "a strided view keeps its rows");
      t.row_stride = row_stride;
    }
    return t;
  }
  std::string shape_str() const {
    std::string s = "[";
    for (int i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }
};

}  // namespace qsft
