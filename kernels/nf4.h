// 4-bit block quantization of frozen weights exactly as bitsandbytes does it (QLoRA's `load_in_4bit`): the flat
// tensor in blocks of 64 values, each block scaled by its fp32 absmax and every value rounded to the nearest of 16
// code values (NF4: quantiles of N(0, 1); FP4: 1 sign, 2 exponent, 1 mantissa bit), two codes per byte, the
// first element in the high nibble. Double quantization stores the absmax values themselves in 8 bits: minus
// their mean (the offset), in blocks of 256 scaled by an fp32 absmax2, rounded to bitsandbytes' 8-bit dynamic map.
//
// The rules are those of bitsandbytes' reference ops (backends/default/ops.py: quantize_4bit, quantize_blockwise,
// dequantize_4bit), which its CPU path runs; for NF4 they equal its CUDA kernels bit for bit (same thresholds,
// same tie rule). docs/qlora.md lists where the CUDA kernels differ (FP4 thresholds, exact ties, all-zero blocks)
// and why the offset is the correctly rounded mean (torch's fp32 mean depends on the thread count).
#pragma once
#include <cstdint>

namespace qsft::cpu {

enum class Quant4Type : uint8_t { nf4, fp4 };

constexpr int64_t kQuant4Block = 64;   // weights per absmax (bitsandbytes' blocksize for 4-bit weights)
constexpr int kQuant4MaxParts = 3;     // row ranges of one weight quantized as separate tensors (q, k, v)
constexpr int64_t kAbsmaxBlock = 256;  // absmax values per absmax2 (double quantization)

const float* quant4_code(Quant4Type t);  // the 16 values of a 4-bit code, indexed by the code
const float* dynamic_code();             // bitsandbytes' create_dynamic_map(): 256 sorted values in [-1, 1]

// codes [ceil(n/2)] bytes, absmax [ceil(n/64)]. scaled = clamp(w * (1 / max(absmax, 1e-38)), -1, 1) (a last
// partial block divides instead, as bitsandbytes does), then the nearest code: below or at the fp32 midpoint of
// two neighbours the lower one.
void quantize_4bit(const float* w, int64_t n, Quant4Type t, uint8_t* codes, float* absmax);
// out[i] = code[q_i] * absmax[i / 64] in fp32.
void dequantize_4bit(const uint8_t* codes, const float* absmax, int64_t n, Quant4Type t, float* out);

// Double quantization of nb absmax values: offset = their mean (fp32 rounding of the exact mean);
// q[ceil(nb)] and absmax2 [ceil(nb/256)] = quantize_blockwise(absmax - offset, blocksize 256, dynamic map).
float absmax_offset(const float* absmax, int64_t nb);
void quantize_absmax(const float* absmax, int64_t nb, float offset, uint8_t* q, float* absmax2);
// absmax[b] = dynamic[q_b] * absmax2[b / 256] + offset: a product then a sum, each rounded to fp32 (no fma).
void dequantize_absmax(const uint8_t* q, const float* absmax2, int64_t nb, float offset, float* absmax);

}  // namespace qsft::cpu
