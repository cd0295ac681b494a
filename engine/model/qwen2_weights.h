// The frozen weights of a Qwen2/Qwen3 decoder, each Linear as a LinearWeight (its format carried by the weight: dense
// F32/BF16, or 4-bit NF4/FP4 quantized at load as bitsandbytes does), carved from one arena and loaded name by name
// from a Hugging Face model directory.
#pragma once
#include <string>
#include <vector>

#include "engine/arena.h"
#include "engine/io/model_config.h"
#include "engine/ops.h"

namespace qsft {

// How the frozen Linear weights are stored (QLoRA's load_in_4bit, docs/qlora.md): dense in the activation dtype, or
// 4-bit. The embedding, the norms and lm_head stay dense, as bitsandbytes leaves them.
struct WeightQuant {
  WeightFormat format = WeightFormat::dense;  // nf4 | fp4: bnb_4bit_quant_type
  bool double_quant = false;                  // bnb_4bit_use_double_quant
};

// A Linear [sum(part_rows), in] (+ bias) from `a` in `quant`'s format (dense: of dtype w; 4-bit: computing in w): the
// modules it stacks (one, or gate/up, or q/k/v) have part_rows[p] rows each; a 4-bit one quantizes each as its own
// tensor, as bitsandbytes does. InputError when 4-bit blocks of 64 do not fit.
LinearWeight carve_linear(Arena& a, const std::vector<int64_t>& part_rows, int64_t in, bool has_bias, DType w,
                          const WeightQuant& quant);
// The same with `parts` equal row ranges of a Linear [out, in].
LinearWeight carve_linear(Arena& a, int64_t out, int64_t in, bool has_bias, DType w, const WeightQuant& quant,
                          int parts = 1);
// Part p of the 4-bit Linear W from host values [W.q.part_rows[p], in]: quantized as bitsandbytes quantizes that
// tensor (kernels/nf4.h), codes and scales copied into W's memory (the offsets into W.q).
void quantize_linear_part(Ops& ops, const float* values, LinearWeight& W, int p);

struct LayerWeights {
  Tensor in_norm, post_norm;  // [H]
  // [(n + 2 nkv) D, H] (+ bias): q_proj rows, then k_proj's, then v_proj's (fused at load; 4-bit: three parts), so
  // one GEMM makes [T, (n + 2 nkv) D] with q, k and v as column slices. Qwen2: with bias; Qwen3: without.
  LinearWeight qkv;
  Tensor q_norm, k_norm;      // Qwen3: RMSNorm weights [D] over each head of q and k before RoPE; else empty
  LinearWeight o;             // [H, n*D] (+ bias [H] on a Qwen3 with attention_bias)
  LinearWeight gate_up;       // [2I, H]: gate_proj rows then up_proj rows (fused at load; 4-bit: two parts)
  LinearWeight down;          // [H, I]
};

struct Qwen2Weights {
  Tensor embed;       // [V, H]
  Tensor final_norm;  // [H]
  Tensor lm_head;     // [V, H] (the embedding itself when tied)
  std::vector<LayerWeights> layers;
  RopeFreqs rope;  // inv_freq F32 [D/2] (a frozen buffer, from the config, as transformers' rotary embedding)

  // Takes every tensor from `a` (a measuring arena only counts bytes), all of dtype `w` but the Linear weights in
  // `quant`'s format (InputError when a 4-bit weight does not split into blocks of 64); the embedding from `embed_a`
  // when given (an untied embedding in host-mapped memory: ModelOptions::embedding_on_host).
  void carve(Arena& a, const Qwen2Config& cfg, DType w, const WeightQuant& quant = {}, Arena* embed_a = nullptr);
  // Fills them from `model_dir` (one or sharded safetensors): shapes checked, converted to each tensor's dtype; a
  // 4-bit Linear is quantized from the checkpoint's values (kernels/nf4.h) on the host.
  void load(Ops& ops, const Qwen2Config& cfg, const std::string& model_dir);
  // The RoPE table for sequences of up to seq_len tokens (load() sets it for the config's context).
  void set_rope(Ops& ops, const Qwen2Config& cfg, int64_t seq_len);
};

}  // namespace qsft
