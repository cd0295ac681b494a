#include <cstring>

#include "kernels/kernel_util_cuda.h"
#include "kernels/nf4_cuda.h"

namespace qsft::cuda {
namespace {

// The kernel's arguments by value (in constant memory, read in place: __grid_constant__), tables included.
struct Args {
  float code4[16];
  float dynamic[256];
  const uint8_t* codes;
  const float* absmax;
  const uint8_t* qabsmax;
  const float* absmax2;
  int parts;
  int64_t part_block[cpu::kQuant4MaxParts], part_absmax2[cpu::kQuant4MaxParts];
  float offset[cpu::kQuant4MaxParts];
  int64_t first_pair, pairs;
};

// The absmax of block b (64 elements): stored, or dequantized from its 8-bit code within its part.
__device__ __forceinline__ float block_absmax(const Args& a, int64_t b) {
  if (!a.qabsmax) return a.absmax[b];
  int p = 0;
  while (p + 1 < a.parts && b >= a.part_block[p + 1]) ++p;
  const float s = __fmul_rn(a.dynamic[a.qabsmax[b]], a.absmax2[a.part_absmax2[p] + (b - a.part_block[p]) / 256]);
  return __fadd_rn(s, a.offset[p]);
}

// One thread per byte j = first_pair + i: elements 2j (high nibble) and 2j + 1 (low), in the same block of 64.
template <class T>
__global__ void dequantize_4bit_kernel(const __grid_constant__ Args a, T* out) {
  QSFT_GRID_STRIDE(i, a.pairs) {
    const int64_t j = a.first_pair + i;
    const float am = block_absmax(a, 2 * j / 64);
    const uint8_t byte = a.codes[j];
    store(out + 2 * i, __fmul_rn(a.code4[byte >> 4], am));
    store(out + 2 * i + 1, __fmul_rn(a.code4[byte & 0xF], am));
  }
}

}  // namespace

void dequantize_4bit(const Quant4View& q, DType dt, void* out, void* stream) {
  if (q.n == 0) return;
  Args a{};
  std::memcpy(a.code4, q.code4, sizeof a.code4);
  std::memcpy(a.dynamic, q.dynamic, sizeof a.dynamic);
  a.codes = q.codes;
  a.absmax = q.absmax;
  a.qabsmax = q.qabsmax;
  a.absmax2 = q.absmax2;
  a.parts = q.parts;
  for (int p = 0; p < cpu::kQuant4MaxParts; ++p) {
    a.part_block[p] = q.part_block[p];
    a.part_absmax2[p] = q.part_absmax2[p];
    a.offset[p] = q.offset[p];
  }
  a.first_pair = q.first / 2;
  a.pairs = q.n / 2;
  dispatch_float(dt, "dequantize_4bit", [&](auto tag) {
    using E = decltype(tag);
    dequantize_4bit_kernel<E><<<grid_for(a.pairs), kThreads, 0, as_stream(stream)>>>(a, static_cast<E*>(out));
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
