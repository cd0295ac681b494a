// Fuzzes the safetensors reader: the header (length, JSON, entries) and the tensor table's validation (dtypes,
// shapes, offsets inside the data section, no overlaps), then reads every tensor's bytes through the converters,
// so a table that passes validation but points outside the mapping is caught by AddressSanitizer.
// An input that starts with '{' is a model.safetensors.index.json instead, over two fixed shards.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/io/safetensors.h"
#include "fuzz_util.h"

namespace {

using namespace qsft;

// The shards an index input may name: model-00001-of-00002.safetensors {a: F32 [2, 3], b: BF16 [4]},
// model-00002-of-00002.safetensors {c: F16 [2], d: I64 [1]}.
void write_shards(const std::filesystem::path& dir) {
  static const float a[6] = {1, 2, 3, 4, 5, 6};
  static const uint16_t b[4] = {0x3f80, 0x4000, 0x4040, 0x4080}, c[2] = {0x3c00, 0x4000};
  static const int64_t d[1] = {7};
  std::filesystem::create_directories(dir);
  write_safetensors(dir / "model-00001-of-00002.safetensors",
                    {{"a", DType::F32, {2, 3}, a}, {"b", DType::BF16, {4}, b}}, {{"format", "pt"}});
  write_safetensors(dir / "model-00002-of-00002.safetensors", {{"c", DType::F16, {2}, c}, {"d", DType::I64, {1}, d}});
}

// Every tensor the store shows, required with its own shape and read in full.
void read_all(const TensorStore& store) {
  for (const std::string& name : store.names()) {
    const TensorInfo& t = store.require(name, store.find(name)->shape);
    fuzz::require(t.nbytes == size_t(t.numel()) * dtype_size(t.dtype), "nbytes == numel x dtype size");
    if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16) continue;
    std::vector<float> f32(size_t(t.numel()));
    std::vector<uint16_t> bf16(size_t(t.numel()));
    copy_to_f32(t, f32.data());
    copy_to_bf16(t, bf16.data());
    if (t.shape.size() <= size_t(Tensor::kMaxDims)) fuzz::require(t.view().data == t.data, "view() aliases the bytes");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const bool index = !input.empty() && input.front() == '{';
  const std::filesystem::path dir = fuzz::scratch_dir() / (index ? "sharded" : "single");
  static const bool shards_written = (write_shards(fuzz::scratch_dir() / "sharded"), true);
  (void)shards_written;
  fuzz::write_file(index ? "sharded/model.safetensors.index.json" : "single/model.safetensors", input);
  fuzz::expect_input_errors({dir.string()}, [&] { read_all(TensorStore::open_dir(dir)); });
  return 0;
}
