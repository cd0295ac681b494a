// CUDA launcher of the 4-bit weight dequantization (kernels/nf4.h is the reference): a QLoRA weight into a dense
// F32/BF16 scratch, which the frozen Linear's cuBLASLt GEMM then reads (docs/qlora.md: a fused 4-bit GEMM is the
// next step, to decide by measurement).
#pragma once
#include <cstdint>

#include "engine/base/tensor.h"
#include "kernels/nf4.h"

namespace qsft::cuda {

// Elements [first, first + n) of a 4-bit weight on the device (Quant4 in engine/ops.h; first and n multiples of 64),
// with the host-side code tables.
struct Quant4View {
  const uint8_t* codes = nullptr;    // [n/2], two per byte, high nibble first
  const float* absmax = nullptr;     // F32 [n/64] (not double-quantized)
  const uint8_t* qabsmax = nullptr;  // U8 [n/64] (double-quantized), with absmax2 and offset
  const float* absmax2 = nullptr;    // ceil(part blocks / 256) per part, part after part
  // Double quantization: the weight's row ranges quantized as separate tensors (Quant4's parts), each with its first
  // block of 64, its first absmax2 value and its offset.
  int parts = 1;
  int64_t part_block[cpu::kQuant4MaxParts] = {}, part_absmax2[cpu::kQuant4MaxParts] = {};
  float offset[cpu::kQuant4MaxParts] = {};
  int64_t first = 0, n = 0;
  const float* code4 = nullptr;    // host: the 16 values of the 4-bit code
  const float* dynamic = nullptr;  // host: the 256 values of the 8-bit dynamic map (double quantization)
};

// out [n] of dtype dt: element first + i = code4[q] * absmax, the absmax first dequantized as dynamic[q8] * absmax2 +
// offset; every product and sum rounded to fp32 on its own (no fused multiply-add), as bitsandbytes: the bits of the
// reference.
void dequantize_4bit(const Quant4View& q, DType dt, void* out, void* stream);

}  // namespace qsft::cuda
