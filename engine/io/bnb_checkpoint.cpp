#include "engine/io/bnb_checkpoint.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "engine/base/error.h"
#include "engine/base/json_reader.h"
#include "kernels/nf4.h"

namespace qsft {

void read_saved_quantization(const json::Object& k, const std::string& path, SavedQuant4& saved) {
  const std::optional<json::Object> q = k.object("quantization_config");
  if (!q) return;
  const std::string method = q->string("quant_method", "");
  if (method != "bitsandbytes")
    throw k.error("key \"" + q->name("quant_method") + "\" is \"" + method +
                  "\": only bitsandbytes 4-bit checkpoints are supported");
  if (q->boolean("load_in_8bit", false) || q->boolean("_load_in_8bit", false))
    throw k.error("key \"" + q->name("load_in_8bit") +
                  "\" is true: bitsandbytes 8-bit checkpoints are not supported (save the model unquantized, or in "
                  "4-bit)");
  if (!q->boolean("load_in_4bit", q->boolean("_load_in_4bit", false))) return;
  const std::string storage = q->string("bnb_4bit_quant_storage", "uint8");
  if (storage != "uint8")
    throw k.error("key \"" + q->name("bnb_4bit_quant_storage") + "\" is \"" + storage + "\": only uint8 is supported");
  for (const std::string& m : q->strings("llm_int8_skip_modules"))
    if (m != "lm_head")  // lm_head stays dense anyway; any other module would be a dense Linear beside 4-bit ones
      throw k.error("key \"" + q->name("llm_int8_skip_modules") + "\" holds \"" + m +
                    "\": only lm_head may be left unquantized");
  saved.quant_type = q->string("bnb_4bit_quant_type", "fp4");  // transformers' default
  if (saved.quant_type != "nf4" && saved.quant_type != "fp4")
    throw k.error("key \"" + q->name("bnb_4bit_quant_type") + "\" is \"" + saved.quant_type +
                  "\": only nf4 and fp4 are supported");
  saved.double_quant = q->boolean("bnb_4bit_use_double_quant", false);
  saved.path = path;
}

namespace {

WeightFormat format_of(const std::string& quant_type) {
  return quant_type == "fp4" ? WeightFormat::fp4 : WeightFormat::nf4;
}
const char* name_of(WeightFormat f) { return f == WeightFormat::fp4 ? "fp4" : "nf4"; }
std::string describe(const WeightQuant& q) {
  return std::string(name_of(q.format)) + (q.double_quant ? " double-quantized" : "");
}

}  // namespace

WeightQuant resolve_weight_quant(const Qwen2Config& cfg, const WeightQuant& asked, bool full_finetuning) {
  const SavedQuant4& s = cfg.saved_4bit;
  if (s.quant_type.empty()) return asked;
  const WeightQuant saved{format_of(s.quant_type), s.double_quant};
  if (full_finetuning)
    throw input_error(s.path,
                      "the model's weights are saved in bitsandbytes 4-bit form: full fine-tuning needs the "
                      "unquantized model (QLoRA over this folder: add a \"lora\" section)");
  if (asked.format != WeightFormat::dense && (asked.format != saved.format || asked.double_quant != saved.double_quant))
    throw input_error(s.path, "the weights are saved as bitsandbytes " + describe(saved) + " but the run asks for " +
                                  describe(asked) + " (remove the run's load_in_4bit keys or make them match)");
  return saved;
}

namespace {

InputError bad(const TensorInfo& t, const std::string& what) {
  return input_error(t.file, "tensor " + t.name + ": " + what);
}

// The tensor `name` with this dtype and shape (missing or another shape: TensorStore::require's errors).
const TensorInfo& need(const TensorStore& store, const std::string& name, DType dtype, std::vector<int64_t> shape) {
  const TensorInfo& t = store.require(name, shape);
  if (t.dtype != dtype) throw bad(t, std::string("dtype ") + dtype_name(t.dtype) + " expected " + dtype_name(dtype));
  return t;
}

// A saved map (quant_map, nested_quant_map) must hold our table's bits: our kernels use the tables.
void check_map(const TensorInfo& t, const float* ours, int64_t n) {
  if (std::memcmp(t.data, ours, size_t(n) * sizeof(float)) != 0)
    throw bad(t, "differs from bitsandbytes' standard table (a custom code map is not supported)");
}

// The JSON object of name.quant_state.bitsandbytes__nf4|fp4 (exactly one of them).
struct QuantState {
  std::string quant_type;
  bool nested = false;
  float offset = 0;
};

QuantState read_quant_state(const TensorStore& store, const std::string& name, const TensorInfo& weight, int64_t rows,
                            int64_t in) {
  const TensorInfo *nf4 = store.find(name + ".quant_state.bitsandbytes__nf4"),
                   *fp4 = store.find(name + ".quant_state.bitsandbytes__fp4");
  if (!nf4 == !fp4)
    throw bad(weight, std::string(nf4 ? "both" : "neither") +
                          " quant_state.bitsandbytes__nf4 and __fp4 present (a bitsandbytes 4-bit weight has one)");
  const TensorInfo& t = nf4 ? *nf4 : *fp4;
  if (t.dtype != DType::U8 || t.shape.size() != 1) throw bad(t, "must be a U8 vector (JSON text)");
  const std::string where = t.file + ": tensor " + t.name;
  const json::Document doc(where, std::string(static_cast<const char*>(t.data), t.nbytes));
  const json::Object k = doc.object();
  QuantState s;
  s.quant_type = k.string("quant_type", "");
  if (s.quant_type != (nf4 ? "nf4" : "fp4"))
    throw k.error("quant_type \"" + s.quant_type + "\" does not match the tensor's name");
  if (k.integer("blocksize") != cpu::kQuant4Block)
    throw k.error("blocksize " + std::to_string(k.integer("blocksize")) + " is not supported (only 64)");
  const std::string dtype = k.string("dtype", "");
  if (dtype != "float32" && dtype != "bfloat16" && dtype != "float16")
    throw k.error("dtype \"" + dtype + "\" is not supported (float32, bfloat16, float16)");
  if (k.integers("shape") != std::vector<int64_t>{rows, in})
    throw k.error("shape is not [" + std::to_string(rows) + ", " + std::to_string(in) + "] (the Linear's)");
  s.nested = k.get("nested_offset").has_value();
  if (!s.nested) return s;
  if (k.integer("nested_blocksize") != cpu::kAbsmaxBlock)
    throw k.error("nested_blocksize " + std::to_string(k.integer("nested_blocksize")) + " is not supported (only 256)");
  if (k.string("nested_dtype", "") != "float32") throw k.error("nested_dtype must be \"float32\"");
  const double offset = k.number("nested_offset");
  if (!std::isfinite(offset)) throw k.error("nested_offset is not finite");
  s.offset = float(offset);  // bitsandbytes: torch.tensor(float(offset)), an fp32 scalar
  return s;
}

}  // namespace

bool load_saved_4bit_part(Ops& ops, const TensorStore& store, const std::string& name, LinearWeight& W, int p) {
  const TensorInfo* w = store.find(name);
  if (!w || w->dtype != DType::U8) return false;
  const int64_t rows = W.out() / W.q.parts, n = rows * W.in(), nb = W.blocks_per_part();
  const QuantState s = read_quant_state(store, name, *w, rows, W.in());
  const WeightQuant want{W.q.format, W.q.double_quant()}, got{format_of(s.quant_type), s.nested};
  if (want.format != got.format || want.double_quant != got.double_quant)
    throw bad(*w, "saved as " + describe(got) + ", but config.json's quantization_config says " + describe(want));
  const TensorInfo& codes = need(store, name, DType::U8, {n / 2, 1});
  const TensorInfo& absmax = need(store, name + ".absmax", s.nested ? DType::U8 : DType::F32, {nb});
  check_map(need(store, name + ".quant_map", DType::F32, {16}),
            cpu::quant4_code(s.quant_type == "fp4" ? cpu::Quant4Type::fp4 : cpu::Quant4Type::nf4), 16);
  ops.copy_to_device(W.w.rows(p * rows, (p + 1) * rows).data, codes.data, codes.nbytes);
  ops.copy_to_device(static_cast<char*>(W.q.absmax.data) + p * int64_t(absmax.nbytes), absmax.data, absmax.nbytes);
  if (!s.nested) return true;
  const int64_t n2 = W.absmax2_per_part();
  const TensorInfo& absmax2 = need(store, name + ".nested_absmax", DType::F32, {n2});
  check_map(need(store, name + ".nested_quant_map", DType::F32, {256}), cpu::dynamic_code(), 256);
  ops.copy_to_device(static_cast<char*>(W.q.absmax2.data) + p * n2 * 4, absmax2.data, absmax2.nbytes);
  W.q.offset[p] = s.offset;
  return true;
}

}  // namespace qsft
