// Full fine-tuning's layout and model folders: FullLayout names exactly the tensors a Hugging Face checkpoint holds;
// write_full_model writes sharded safetensors with an index that read back bit for bit (F32) or rounded once (BF16);
// export_full_model replaces an earlier export but refuses the base model's folder and any other existing folder.
#include <algorithm>
#include <filesystem>

#include "engine/base/half.h"
#include "engine/io/full_model.h"
#include "fixture.h"

namespace qsft::test {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("qsft_full_model_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

std::vector<float> numbered(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = 0.001f * float(i % 4099) - 1.5f;
  return v;
}

TEST(FullModel, LayoutNamesEveryCheckpointTensor) {
  for (const char* c : {"tied", "untied", "qwen3"}) {
    QSFT_REQUIRE_FIXTURE(c);
    const fs::path dir = repo_testdata() / "fixtures" / c / "model";
    const Qwen2Config cfg = Qwen2Config::load(dir);
    const FullLayout layout(cfg);
    std::vector<std::string> ours, theirs = TensorStore::open_dir(dir).names();
    for (const FullWeight& w : layout.weights()) ours.push_back(w.name);
    std::sort(ours.begin(), ours.end());
    std::sort(theirs.begin(), theirs.end());
    EXPECT_EQ(ours, theirs) << c;
    EXPECT_EQ(layout.load(dir.string()).size(), size_t(layout.num_params()));  // shapes checked on load
  }
}

TEST(FullModel, ShardedFolderReadsBackExactly) {
  QSFT_REQUIRE_FIXTURE("untied");
  const fs::path base = repo_testdata() / "fixtures" / "untied" / "model";
  const FullLayout layout(Qwen2Config::load(base));
  const std::vector<float> params = numbered(layout.num_params());
  const fs::path f32 = fresh_dir("f32"), bf16 = fresh_dir("bf16");
  write_full_model(base, layout, params, f32, DType::F32, size_t(200) << 10);  // several shards of <= 200 KiB
  EXPECT_TRUE(fs::exists(f32 / "model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(f32 / "config.json"));
  EXPECT_EQ(layout.load(f32.string()), params);
  write_full_model(base, layout, params, bf16, DType::BF16);
  EXPECT_TRUE(fs::exists(bf16 / "model.safetensors"));
  EXPECT_EQ(Qwen2Config::load(bf16).dtype, "bfloat16");
  const std::vector<float> back = layout.load(bf16.string());
  for (size_t i = 0; i < params.size(); ++i) ASSERT_EQ(back[i], bf16_to_f32(f32_to_bf16(params[i]))) << i;
  fs::remove_all(f32);
  fs::remove_all(bf16);
}

TEST(FullModel, ExportReplacesAnEarlierExportOnly) {
  QSFT_REQUIRE_FIXTURE("tied");
  const fs::path base = repo_testdata() / "fixtures" / "tied" / "model";
  const FullLayout layout(Qwen2Config::load(base));
  const fs::path out = fresh_dir("export");
  export_full_model(base, layout, numbered(layout.num_params()), out);
  export_full_model(base, layout, numbered(layout.num_params()), out);  // again: replaced
  EXPECT_EQ(layout.load(out.string()), numbered(layout.num_params()));  // fp32 base: fp32 export
  const fs::path other = fresh_dir("other");
  fs::create_directories(other);
  EXPECT_THROW(export_full_model(base, layout, numbered(layout.num_params()), other), InputError);
  EXPECT_THROW(export_full_model(base, layout, numbered(layout.num_params()), base), InputError);  // never the base
  fs::remove_all(out);
  fs::remove_all(other);
}

}  // namespace
}  // namespace qsft::test
