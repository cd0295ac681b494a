// Model folders saved by transformers + bitsandbytes in 4-bit form (`save_pretrained` of a model loaded with
// BitsAndBytesConfig(load_in_4bit=True)), loaded as they are: no re-quantization, so the dequantized weights are
// bitsandbytes' bit for bit (docs/qlora.md). Such a folder has
//   config.json  quantization_config {"quant_method": "bitsandbytes", "load_in_4bit": true,
//                "bnb_4bit_quant_type": "nf4"|"fp4", "bnb_4bit_use_double_quant": bool, ...}
//   per quantized Linear, next to its bias:
//     W.weight                                   U8 [out*in/2, 1]  codes, two per byte, high nibble first
//     W.weight.absmax                            F32 [out*in/64], or U8 when double-quantized
//     W.weight.quant_map                         F32 [16]   the 4-bit code's values
//     W.weight.nested_absmax, .nested_quant_map  F32 [ceil(out*in/64/256)], F32 [256]  (double quantization)
//     W.weight.quant_state.bitsandbytes__nf4|fp4 U8 [n]     a JSON object: quant_type, blocksize, dtype, shape,
//                                                           and nested_blocksize, nested_dtype, nested_offset
// We take blocks of 64 (nested: 256), nf4/fp4, the maps equal to ours bit for bit (kernels/nf4.h), uint8 storage
// and every decoder Linear quantized; anything else is refused naming the file and the tensor or key.
#pragma once
#include <string>

#include "engine/io/model_config.h"
#include "engine/io/safetensors.h"
#include "engine/model/qwen2_weights.h"

namespace qsft {

namespace json {
class Object;
}

// config.json's quantization_config (k is config.json's root) into `saved`: left empty when absent or not
// 4-bit-saved. Refuses another quant_method, load_in_8bit, a storage other than uint8, and skipped modules that
// are decoder Linears (they would be dense beside 4-bit ones).
void read_saved_quantization(const json::Object& k, const std::string& path, SavedQuant4& saved);

// The frozen Linears' format for a model of `cfg`: the saved 4-bit format when the folder has one (a run that asks
// for 4-bit must ask for the same; full fine-tuning, which needs the unquantized weights, is refused), else
// `asked`.
WeightQuant resolve_weight_quant(const Qwen2Config& cfg, const WeightQuant& asked, bool full_finetuning);

// Part p of the 4-bit Linear W from the saved bitsandbytes tensors of `name` (a U8 weight): codes, absmax and, when
// double-quantized, absmax2 and the offset, as stored. False when `name` is not saved in 4-bit form (a dense
// tensor: the caller quantizes it).
bool load_saved_4bit_part(Ops& ops, const TensorStore& store, const std::string& name, LinearWeight& W, int p);

}  // namespace qsft
