// CUDA launchers of the elementwise ops (kernels/elementwise.h is the reference). Tensors are F32 or BF16 (dt),
// math in fp32, one rounding at the store. Streams are void* cudaStream_t.
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/base/tensor.h"

namespace qsft::cuda {

void add_inplace(DType dt, void* y, const void* x, int64_t n, void* stream);  // y += x   [n]
void scale_inplace(DType dt, void* y, float s, int64_t n, void* stream);      // y *= s   [n]
// y = keep ? x / (1 - p) : 0, keep = rng::uniform16(seed, i) >= p (the CPU op's mask, bit for bit). x, y may alias.
void dropout(DType dt, const void* x, int64_t n, float p, uint64_t seed, void* y, void* stream);
// y += dropout(x) (the same mask), in fp32 with one rounding at the store. x, y distinct.
void dropout_add(DType dt, const void* x, int64_t n, float p, uint64_t seed, void* y, void* stream);
// dst [rows, cols] (contiguous bf16) = src [rows, cols] with row stride ld, rounded to nearest even.
void cast_f32_to_bf16_2d(const float* src, int64_t rows, int64_t cols, int64_t ld, void* dst, void* stream);
// dst = src, `bytes` a multiple of 16 and both 16-byte aligned: a plain 16-byte-word copy kernel, the bandwidth
// ceiling bench/gpu_ops_bench measures beside cudaMemcpy.
void copy_words(void* dst, const void* src, size_t bytes, void* stream);

}  // namespace qsft::cuda
