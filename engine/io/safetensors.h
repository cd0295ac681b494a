// safetensors files: read (memory-mapped, validated), write (atomic), and a model directory of them (one file or
// shards listed by model.safetensors.index.json). Format: 8-byte little-endian header length N, N bytes of JSON
// {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}}, then the data section;
// offsets are relative to the data section. Every error is an InputError that starts with the file path.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/base/tensor.h"

namespace qsft {

// One tensor of a mapped file. `data` points into the read-only mapping and lives as long as the file object.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // [] for a scalar
  const void* data = nullptr;
  size_t nbytes = 0;
  std::string file;  // the path it came from, for error messages

  int64_t numel() const;
  std::string shape_str() const;  // "[896, 4864]"
  // A Tensor over the mapped bytes (CPU; read-only memory: never write through it). At most 4 dimensions.
  Tensor view() const;
};

// Element conversion into the caller's buffer of numel() elements; F32/BF16/F16 only (I32/I64 -> InputError).
void copy_to_f32(const TensorInfo& t, float* dst);
void copy_to_bf16(const TensorInfo& t, uint16_t* dst);

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::filesystem::path& path);

  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();  // unmaps

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in header order
  const TensorInfo* find(const std::string& name) const;               // nullptr when absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// The weights of a Hugging Face model directory: DIR/model.safetensors when present (as transformers prefers),
// otherwise the shards named by DIR/model.safetensors.index.json {"metadata": {...}, "weight_map": {name: file}}.
// Every mapped shard must exist and hold the tensors mapped to it; tensors a shard holds beyond its weight_map
// entries are not visible.
class TensorStore {
 public:
  static TensorStore open_dir(const std::filesystem::path& dir);

  const TensorInfo* find(const std::string& name) const;  // nullptr when absent
  bool has(const std::string& name) const { return find(name) != nullptr; }
  // The tensor, with exactly this shape. Missing: "DIR: missing tensor NAME (looked in model.safetensors)";
  // other shape: "FILE: tensor NAME: shape [63] expected [64]".
  const TensorInfo& require(const std::string& name, const std::vector<int64_t>& expected_shape) const;
  std::vector<std::string> names() const;  // sorted

 private:
  std::string dir_;
  std::string source_;  // "model.safetensors" or "model.safetensors.index.json"
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorInfo*> by_name_;  // points into files_
};

// One tensor to write: `data` holds numel(shape) elements of `dtype`, little-endian, contiguous.
struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
};

// Writes a file the Python safetensors library would write for the same tensors: "__metadata__" first (keys
// sorted), tensors ordered by dtype (I64, F32, I32, BF16, F16: larger elements first keeps every tensor aligned)
// then name, header padded with spaces to a multiple of 8. Atomic: path + ".tmp", then renamed.
void write_safetensors(const std::filesystem::path& path, const std::vector<SafetensorsEntry>& entries,
                       const std::map<std::string, std::string>& metadata = {});

// A model's weights into DIR: model.safetensors when their bytes fit in max_shard_bytes, otherwise
// model-00001-of-0000N.safetensors ... (filled in name order) plus
// model.safetensors.index.json (indent 2, sorted keys). Each file is written atomically, the index last.
void write_model_safetensors(const std::filesystem::path& dir, const std::vector<SafetensorsEntry>& entries,
                             const std::map<std::string, std::string>& metadata, size_t max_shard_bytes);

}  // namespace qsft
