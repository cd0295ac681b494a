#include "engine/io/full_model.h"

#include <unistd.h>

#include <cstring>

#include "engine/base/error.h"
#include "engine/base/half.h"
#include "engine/base/json_writer.h"
#include "engine/base/sync_dir.h"
#include "engine/io/merge_model.h"
#include "engine/io/model_config.h"
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
  std::error_code same_ec;
  if (fs::equivalent(out_dir, base_dir, same_ec))
    throw input_error(out_dir.string(), "is the base model folder (choose another --out)");
  if (fs::exists(out_dir) && !fs::exists(out_dir / "config.json"))
    throw input_error(out_dir.string(), "exists and is not an exported model (choose another --out)");
  const TensorStore base = TensorStore::open_dir(base_dir);
  const bool f32 = !base.names().empty() && base.find(base.names()[0])->dtype == DType::F32;
  const fs::path parent = fs::absolute(out_dir).parent_path();
  const fs::path tmp = parent / (".tmp-" + out_dir.filename().string() + "." + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(tmp, ec);
  try {
    write_full_model(base_dir, layout, params, tmp, f32 ? DType::F32 : DType::BF16);
    if (int e = sync_directory(tmp)) throw std::runtime_error(std::string("fsync: ") + std::strerror(e));
    fs::remove_all(out_dir);
    fs::rename(tmp, out_dir);
    if (int e = sync_directory(parent)) throw std::runtime_error(std::string("fsync: ") + std::strerror(e));
  } catch (const std::exception& e) {
    fs::remove_all(tmp, ec);
    throw input_error(out_dir.string(), std::string("model not written: ") + e.what());
  }
}

}  // namespace qsft
