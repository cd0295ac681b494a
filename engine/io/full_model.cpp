#include "engine/io/full_model.h"

#include "engine/base/error.h"
#include "engine/base/half.h"
#include "engine/base/json_writer.h"
#include "engine/io/merge_model.h"
#include "engine/io/model_config.h"
#include "engine/io/model_dir.h"
#include "engine/io/safetensors.h"

namespace qsft {

namespace fs = std::filesystem;

void write_full_model(const fs::path& base_dir, const FullLayout& layout, const std::vector<float>& params,
                      const fs::path& out_dir, DType dtype, size_t max_shard_bytes) {
  QSFT_CHECK(int64_t(params.size()) == layout.num_params(), "parameters of another layout");
  QSFT_CHECK(dtype == DType::F32 || dtype == DType::BF16, "a full model is written in F32 or BF16");
  std::vector<std::vector<uint16_t>> bf16;  // alive until written
  bf16.reserve(layout.weights().size());
  std::vector<SafetensorsEntry> entries;
  for (const FullWeight& w : layout.weights()) {
    const float* src = params.data() + w.offset;
    if (dtype == DType::F32) {
      entries.push_back({w.name, DType::F32, w.shape, src});
      continue;
    }
    std::vector<uint16_t>& b = bf16.emplace_back(size_t(w.numel()));
    for (size_t i = 0; i < b.size(); ++i) b[i] = f32_to_bf16(src[i]);
    entries.push_back({w.name, DType::BF16, w.shape, b.data()});
  }
  fs::create_directories(out_dir);
  Qwen2Config cfg = Qwen2Config::load(base_dir);
  cfg.dtype = dtype == DType::F32 ? "float32" : "bfloat16";
  write_file_atomic(out_dir / "config.json", cfg.to_json());
  write_model_safetensors(out_dir, entries, {{"format", "pt"}}, max_shard_bytes);
  copy_tokenizer_files(base_dir, out_dir);
}

void export_full_model(const fs::path& base_dir, const FullLayout& layout, const std::vector<float>& params,
                       const fs::path& out_dir) {
  const TensorStore base = TensorStore::open_dir(base_dir);
  const bool f32 = !base.names().empty() && base.find(base.names()[0])->dtype == DType::F32;
  publish_model_dir(base_dir, out_dir, [&](const fs::path& tmp) {
    write_full_model(base_dir, layout, params, tmp, f32 ? DType::F32 : DType::BF16);
  });
}

}  // namespace qsft
