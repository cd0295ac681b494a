#include "engine/io/merge_model.h"

#include <fstream>
#include <iterator>
#include <map>

#include "engine/base/error.h"
#include "engine/base/half.h"
#include "engine/base/json_writer.h"
#include "engine/io/model_config.h"
#include "engine/io/model_dir.h"
#include "engine/io/safetensors.h"

namespace qsft {

namespace fs = std::filesystem;

namespace {

// W [out, in] += scaling * B [out, r] @ A [r, in], in fp32.
void add_lora_update(std::vector<float>& W, const float* A, const float* B, int64_t out, int64_t in, int64_t r,
                     float scaling) {
#pragma omp parallel for
  for (int64_t o = 0; o < out; ++o)
    for (int64_t k = 0; k < r; ++k) {
      const float b = scaling * B[o * r + k];
      const float* a = A + k * in;
      float* w = W.data() + o * in;
      for (int64_t i = 0; i < in; ++i) w[i] += b * a[i];
    }
}

std::string module_weight_name(const LoraSlot& s) {
  const char* parent = s.target <= LoraTarget::o ? "self_attn" : "mlp";
  return "model.layers." + std::to_string(s.layer) + "." + parent + "." + lora_target_name(s.target) + ".weight";
}

}  // namespace

// Writes into out_dir (created if needed).
static void write_merged_model(const fs::path& base_dir, const LoraLayout& layout, const std::vector<float>& lora,
                               const fs::path& out_dir) {
  TensorStore store = TensorStore::open_dir(base_dir);
  Qwen2Config cfg = Qwen2Config::load(base_dir);
  if (!cfg.saved_4bit.quant_type.empty())
    throw input_error(cfg.saved_4bit.path, "holds bitsandbytes " + cfg.saved_4bit.quant_type +
                                               " weights (quantization_config): export --merge needs the bf16 or fp32 "
                                               "model, so merge onto the folder the 4-bit one was made from");
  std::map<std::string, const LoraSlot*> adapted;
  for (const LoraSlot& s : layout.slots()) adapted[module_weight_name(s)] = &s;
  // fp32 stays fp32; bf16 (released Qwen models) and fp16 bases are written as bf16.
  const DType out_dtype = store.names().empty() ? DType::BF16 : store.find(store.names()[0])->dtype;
  std::vector<std::vector<float>> f32_buffers;  // values alive until written
  std::vector<std::vector<uint16_t>> bf16_buffers;
  std::vector<SafetensorsEntry> entries;
  for (const std::string& name : store.names()) {
    if (cfg.tie_word_embeddings && name == "lm_head.weight") continue;  // transformers re-ties it
    const TensorInfo& t = *store.find(name);                            // names() lists only present tensors
    std::vector<float> w(size_t(t.numel()));
    copy_to_f32(t, w.data());
    if (auto it = adapted.find(name); it != adapted.end()) {
      const LoraSlot& s = *it->second;
      add_lora_update(w, lora.data() + s.a_offset, lora.data() + s.b_offset, s.out, s.in, layout.config().r,
                      layout.config().scaling());
    }
    if (out_dtype == DType::F32) {
      entries.push_back({name, DType::F32, t.shape, f32_buffers.emplace_back(std::move(w)).data()});
      continue;
    }
    std::vector<uint16_t>& b = bf16_buffers.emplace_back(w.size());
    for (size_t i = 0; i < w.size(); ++i) b[i] = f32_to_bf16(w[i]);
    entries.push_back({name, DType::BF16, t.shape, b.data()});
  }
  fs::create_directories(out_dir);
  cfg.dtype = out_dtype == DType::F32 ? "float32" : "bfloat16";
  write_file_atomic(out_dir / "config.json", cfg.to_json());
  write_model_safetensors(out_dir, entries, {{"format", "pt"}}, size_t(4) << 30);
  copy_tokenizer_files(base_dir, out_dir);
}

void export_merged_model(const fs::path& base_dir, const LoraLayout& layout, const std::vector<float>& lora,
                         const fs::path& out_dir) {
  publish_model_dir(base_dir, out_dir, [&](const fs::path& tmp) { write_merged_model(base_dir, layout, lora, tmp); });
}

void copy_tokenizer_files(const fs::path& base_dir, const fs::path& out_dir) {
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                        "special_tokens_map.json", "generation_config.json", "chat_template.jinja"}) {
    if (!fs::exists(base_dir / f)) continue;
    std::ifstream in(base_dir / f, std::ios::binary);
    if (!in) throw input_error((base_dir / f).string(), "cannot be read");
    const std::string content{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    write_file_atomic(out_dir / f, content);
  }
}

}  // namespace qsft
