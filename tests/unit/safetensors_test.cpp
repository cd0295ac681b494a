// safetensors reading, writing and model directories (engine/io/safetensors.h), including bad files: every
// error must be an InputError naming the file and the tensor or key.
#include "engine/io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>

#include "engine/base/error.h"
#include "engine/base/half.h"
#include "engine/base/json_writer.h"
#include "test_util.h"

namespace qsft {
namespace {

namespace fs = std::filesystem;

using test::input_error_of;
using test::read_file;

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

// A safetensors file by hand: 8-byte length, the header text as given, `data_bytes` zero bytes.
std::string raw_file(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
  return out + header + std::string(data_bytes, '\0');
}

class SafetensorsTest : public test::TempDirTest {
 protected:
  // Opens a hand-made file; returns the error message (and checks it names the file).
  std::string open_error(const std::string& bytes) {
    fs::path p = dir_ / "model.safetensors";
    write_bytes(p, bytes);
    std::string msg = input_error_of([&] { SafetensorsFile::open(p); });
    EXPECT_NE(msg.find(p.string() + ": "), std::string::npos) << msg;
    return msg;
  }
};

// Test tensors of every dtype (values chosen per dtype; bf16/f16 as raw bits).
struct Fixture {
  std::vector<float> f32{1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, 42.0f};
  std::vector<uint16_t> bf16{0x3f80, 0xc000, 0x3ec0, 0x0000};  // 1, -2, 0.375, 0
  std::vector<uint16_t> f16{0x3c00, 0xc000, 0x3400, 0x7bff};   // 1, -2, 0.25, 65504
  std::vector<int32_t> i32{7, -8, 9};
  std::vector<int64_t> i64{int64_t(1) << 40, -1};
  float scalar = 0.5f;
  std::vector<SafetensorsEntry> entries() const {
    return {{"w.f32", DType::F32, {2, 3}, f32.data()},   {"w.bf16", DType::BF16, {2, 2}, bf16.data()},
            {"w.f16", DType::F16, {4}, f16.data()},      {"ids.i32", DType::I32, {3}, i32.data()},
            {"ids.i64", DType::I64, {1, 2}, i64.data()}, {"scalar", DType::F32, {}, &scalar},
            {"empty", DType::F32, {0, 4}, nullptr}};
  }
};

void expect_same_tensors(const std::vector<SafetensorsEntry>& written,
                         const std::function<const TensorInfo*(const std::string&)>& find) {
  for (auto& e : written) {
    const TensorInfo* t = find(e.name);
    ASSERT_NE(t, nullptr) << e.name;
    EXPECT_EQ(t->dtype, e.dtype) << e.name;
    EXPECT_EQ(t->shape, e.shape) << e.name;
    ASSERT_EQ(t->nbytes, size_t(t->numel()) * dtype_size(e.dtype)) << e.name;
    if (t->nbytes) {
      EXPECT_EQ(std::memcmp(t->data, e.data, t->nbytes), 0) << e.name;
    }
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % dtype_size(e.dtype), 0u) << e.name << " is misaligned";
  }
}

TEST_F(SafetensorsTest, RoundTripsEveryDTypeAndMetadata) {
  Fixture fx;
  fs::path p = dir_ / "all.safetensors";
  write_safetensors(p, fx.entries(), {{"format", "pt"}, {"note", "ü \"quoted\""}});
  EXPECT_FALSE(fs::exists(dir_ / "all.safetensors.tmp"));
  SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_EQ(f.tensors().size(), fx.entries().size());
  expect_same_tensors(fx.entries(), [&](const std::string& n) { return f.find(n); });
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "ü \"quoted\""}}));
  EXPECT_EQ(f.find("absent"), nullptr);
  EXPECT_EQ(f.find("w.f32")->file, p.string());
}

TEST_F(SafetensorsTest, HeaderIsWhatThePythonLibraryWrites) {
  // Produced by safetensors 0.8.0: save_file({"b": f32 [1, 2], "a": bf16 zeros(3), "c": i64 [7], "d": f16 zeros(2),
  // "e": i32 [1, 2, 3]}): tensors ordered by dtype (largest first) then name, padded with spaces to 8 bytes.
  const std::string expected =
      R"({"c":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
      R"("e":{"dtype":"I32","shape":[3],"data_offsets":[16,28]},"a":{"dtype":"BF16","shape":[3],"data_offsets":[28,34]},)"
      R"("d":{"dtype":"F16","shape":[2],"data_offsets":[34,38]}}      )";
  float b[] = {1, 2};
  uint16_t a[3] = {}, d[2] = {};
  int64_t c[] = {7};
  int32_t e[] = {1, 2, 3};
  fs::path p = dir_ / "x.safetensors";
  write_safetensors(p, {{"b", DType::F32, {2}, b},
                        {"a", DType::BF16, {3}, a},
                        {"c", DType::I64, {1}, c},
                        {"d", DType::F16, {2}, d},
                        {"e", DType::I32, {3}, e}});
  std::string bytes = read_file(p);
  ASSERT_EQ(bytes.size(), 8 + expected.size() + 38);
  EXPECT_EQ(bytes.substr(0, 8), raw_file(expected, 0).substr(0, 8));
  EXPECT_EQ(bytes.substr(8, expected.size()), expected);
  EXPECT_EQ(std::memcmp(bytes.data() + 8 + expected.size() + 8, b, 8), 0);  // b follows c's 8 bytes
}

TEST_F(SafetensorsTest, ConvertsHalfTypesToF32AndBF16) {
  Fixture fx;
  fs::path p = dir_ / "m.safetensors";
  write_safetensors(p, fx.entries());
  SafetensorsFile f = SafetensorsFile::open(p);
  std::vector<float> out(4);
  copy_to_f32(*f.find("w.bf16"), out.data());
  EXPECT_EQ(out, (std::vector<float>{1.0f, -2.0f, 0.375f, 0.0f}));
  copy_to_f32(*f.find("w.f16"), out.data());
  EXPECT_EQ(out, (std::vector<float>{1.0f, -2.0f, 0.25f, 65504.0f}));
  std::vector<float> f32(6);
  copy_to_f32(*f.find("w.f32"), f32.data());
  EXPECT_EQ(f32, fx.f32);
  std::vector<uint16_t> bf(6);
  copy_to_bf16(*f.find("w.f32"), bf.data());
  for (size_t i = 0; i < bf.size(); ++i) EXPECT_EQ(bf[i], f32_to_bf16(fx.f32[i])) << i;
  copy_to_bf16(*f.find("w.bf16"), bf.data());
  EXPECT_EQ(std::vector<uint16_t>(bf.begin(), bf.begin() + 4), fx.bf16);

  std::string msg = input_error_of([&] { copy_to_f32(*f.find("ids.i32"), out.data()); });
  EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("ids.i32"), std::string::npos) << msg;
}

TEST_F(SafetensorsTest, ViewSeesTheMappedTensor) {
  Fixture fx;
  fs::path p = dir_ / "m.safetensors";
  write_safetensors(p, fx.entries());
  SafetensorsFile f = SafetensorsFile::open(p);
  Tensor t = f.find("w.f32")->view();
  EXPECT_EQ(t.dtype, DType::F32);
  EXPECT_EQ(t.shape_str(), "[2, 3]");
  EXPECT_EQ(t.f32()[5], 42.0f);
  EXPECT_EQ(f.find("scalar")->view().ndim, 0);
  SafetensorsFile moved = std::move(f);  // the mapping moves with the object; views stay valid
  EXPECT_EQ(moved.find("w.f32")->view().f32()[0], 1.5f);
}

TEST_F(SafetensorsTest, FailedWriteKeepsThePreviousFile) {
  fs::path p = dir_ / "keep.safetensors";
  write_bytes(p, "old");
  EXPECT_THROW(write_file_atomic(p,
                                 [](std::ostream& out) {
                                   out << "partial";
                                   throw std::runtime_error("disk on fire");
                                 }),
               std::runtime_error);
  EXPECT_EQ(read_file(p), "old");
  EXPECT_FALSE(fs::exists(dir_ / "keep.safetensors.tmp"));

  fs::path nowhere = dir_ / "no_such_dir" / "x.safetensors";
  float v = 1;
  std::string msg = input_error_of([&] { write_safetensors(nowhere, {{"v", DType::F32, {1}, &v}}); });
  EXPECT_NE(msg.find(nowhere.string()), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(nowhere));
}

TEST_F(SafetensorsTest, ModelDirectoryOneFileAndSharded) {
  Fixture fx;
  fs::path one = dir_ / "one", sharded = dir_ / "sharded";
  fs::create_directories(one);
  fs::create_directories(sharded);
  write_model_safetensors(one, fx.entries(), {{"format", "pt"}}, size_t(1) << 30);
  EXPECT_TRUE(fs::exists(one / "model.safetensors"));
  EXPECT_FALSE(fs::exists(one / "model.safetensors.index.json"));

  // 20 bytes a shard, in name order: {empty, ids.i32} {ids.i64, scalar} {w.bf16, w.f16} {w.f32}
  write_model_safetensors(sharded, fx.entries(), {{"format", "pt"}}, 20);
  EXPECT_FALSE(fs::exists(sharded / "model.safetensors"));
  ASSERT_TRUE(fs::exists(sharded / "model.safetensors.index.json"));
  for (int k = 1; k <= 4; ++k)
    EXPECT_TRUE(fs::exists(sharded / ("model-0000" + std::to_string(k) + "-of-00004.safetensors"))) << k;
  EXPECT_EQ(SafetensorsFile::open(sharded / "model-00002-of-00004.safetensors").tensors().size(), 2u);
  std::string index = read_file(sharded / "model.safetensors.index.json");
  EXPECT_NE(index.find("\"total_size\": 72"), std::string::npos) << index;
  EXPECT_NE(index.find("\"w.f32\": \"model-00004-of-00004.safetensors\""), std::string::npos) << index;

  for (const fs::path& d : {one, sharded}) {
    TensorStore store = TensorStore::open_dir(d);
    expect_same_tensors(fx.entries(), [&](const std::string& n) { return store.find(n); });
    EXPECT_EQ(store.names(),
              (std::vector<std::string>{"empty", "ids.i32", "ids.i64", "scalar", "w.bf16", "w.f16", "w.f32"}));
    EXPECT_EQ(store.require("w.f32", {2, 3}).numel(), 6);
    EXPECT_TRUE(store.has("scalar"));
    EXPECT_FALSE(store.has("lm_head.weight"));
  }
}

TEST_F(SafetensorsTest, StorePrefersTheSingleFileOverAnIndex) {
  float v = 3;
  write_safetensors(dir_ / "model.safetensors", {{"a", DType::F32, {1}, &v}});
  write_bytes(dir_ / "model.safetensors.index.json", "not even json");
  TensorStore store = TensorStore::open_dir(dir_);
  EXPECT_TRUE(store.has("a"));
}

// ---- bad files ----

TEST_F(SafetensorsTest, TruncatedFileIsAnInputError) {
  Fixture fx;
  fs::path good = dir_ / "good.safetensors";
  write_safetensors(good, fx.entries());
  std::string bytes = read_file(good);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  // Data order: ids.i64 (I64) first, w.f16 (F16) last; a cut in the data names the first tensor it cuts.
  std::vector<std::pair<size_t, std::string>> cuts = {{0, "file is 0 bytes"},
                                                      {5, "file is 5 bytes"},
                                                      {8, "header length"},
                                                      {8 + header_len / 2, "header length"},
                                                      {8 + header_len + 3, "tensor ids.i64: "},
                                                      {bytes.size() - 1, "tensor w.f16: "}};
  for (auto& [cut, names] : cuts) {
    std::string msg = open_error(bytes.substr(0, cut));
    EXPECT_NE(msg.find("truncated"), std::string::npos) << "cut at " << cut << ": " << msg;
    EXPECT_NE(msg.find(names), std::string::npos) << "cut at " << cut << ": " << msg;
  }
}

TEST_F(SafetensorsTest, CorruptHeaderJsonIsAnInputError) {
  std::string msg = open_error(raw_file(R"({"w": {"dtype": "F32", "shape": [1], )", 4));
  EXPECT_NE(msg.find("header is not a JSON object"), std::string::npos) << msg;
  msg = open_error(raw_file("[1, 2]", 0));
  EXPECT_NE(msg.find("header is not a JSON object"), std::string::npos) << msg;
  msg = open_error(raw_file(R"({"w": [1, 2]})", 0));
  EXPECT_NE(msg.find("tensor w: header entry is not a JSON object"), std::string::npos) << msg;
}

TEST_F(SafetensorsTest, HugeHeaderLengthIsAnInputError) {
  std::string bytes = raw_file("{}", 0);
  bytes[4] = 1;  // 2^32 + 2 bytes of header
  std::string msg = open_error(bytes);
  EXPECT_NE(msg.find("exceeds the limit"), std::string::npos) << msg;
}

TEST_F(SafetensorsTest, OffsetsOutOfBoundsIsAnInputError) {
  const std::string name = "model.layers.0.mlp.up_proj.weight";
  std::string msg =
      open_error(raw_file(R"({")" + name + R"(":{"dtype":"F32","shape":[25],"data_offsets":[0,100]}})", 64));
  EXPECT_NE(msg.find("tensor " + name + ": data_offsets [0, 100] end beyond the data section (64 bytes"),
            std::string::npos)
      << msg;
  msg = open_error(raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 64));
  EXPECT_NE(msg.find("tensor w: data_offsets [8, 4] begin after end"), std::string::npos) << msg;
  msg = open_error(raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 64));
  EXPECT_NE(msg.find("tensor w: \"data_offsets\" is not a list of 2 non-negative integers"), std::string::npos) << msg;
}

TEST_F(SafetensorsTest, OverlappingTensorsAreAnInputError) {
  std::string msg = open_error(raw_file(R"({"first":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                        R"("second":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                                        24));
  EXPECT_NE(msg.find("tensors first (data_offsets [0, 16]) and second (data_offsets [8, 24]) overlap"),
            std::string::npos)
      << msg;
}

TEST_F(SafetensorsTest, DTypeTimesShapeNotBytesIsAnInputError) {
  std::string msg = open_error(raw_file(R"({"w.q":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 24));
  EXPECT_NE(msg.find("tensor w.q: dtype F32 and shape [2, 3] need 24 bytes, but data_offsets [0, 20] hold 20"),
            std::string::npos)
      << msg;
}

TEST_F(SafetensorsTest, UnsupportedDTypeIsAnInputError) {
  for (const char* dtype : {"F64", "F8_E4M3", "BOOL", "I8", "U16"}) {
    std::string msg =
        open_error(raw_file(R"({"w":{"dtype":")" + std::string(dtype) + R"(","shape":[1],"data_offsets":[0,1]}})", 8));
    EXPECT_NE(
        msg.find("unsupported dtype " + std::string(dtype) + " for tensor w (supported: F32, BF16, F16, I32, I64, U8)"),
        std::string::npos)
        << msg;
  }
}

TEST_F(SafetensorsTest, MissingFieldsAndBadMetadataAreInputErrors) {
  std::string msg = open_error(raw_file(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4));
  EXPECT_NE(msg.find("tensor w: missing \"shape\""), std::string::npos) << msg;
  msg = open_error(raw_file(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4));
  EXPECT_NE(msg.find("tensor w: missing or non-string \"dtype\""), std::string::npos) << msg;
  msg = open_error(raw_file(R"({"__metadata__":{"format":1}})", 0));
  EXPECT_NE(msg.find("__metadata__ key \"format\""), std::string::npos) << msg;
  msg = open_error(raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                            R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                            8));
  EXPECT_NE(msg.find("key \"w\" appears twice"), std::string::npos) << msg;
}

TEST_F(SafetensorsTest, RequireReportsMissingTensor) {
  float v[4] = {};
  write_safetensors(dir_ / "model.safetensors", {{"model.norm.weight", DType::F32, {4}, v}});
  TensorStore store = TensorStore::open_dir(dir_);
  std::string msg = input_error_of([&] { store.require("model.layers.1.self_attn.q_proj.bias", {4}); });
  EXPECT_EQ(msg, dir_.string() + ": missing tensor model.layers.1.self_attn.q_proj.bias (looked in model.safetensors)");
}

TEST_F(SafetensorsTest, RequireReportsShapeMismatch) {
  std::vector<float> v(63);
  write_model_safetensors(dir_, {{"model.norm.weight", DType::F32, {63}, v.data()}, {"x", DType::F32, {63}, v.data()}},
                          {}, 300);
  TensorStore store = TensorStore::open_dir(dir_);
  std::string msg = input_error_of([&] { store.require("model.norm.weight", {64}); });
  EXPECT_EQ(msg, (dir_ / "model-00001-of-00002.safetensors").string() +
                     ": tensor model.norm.weight: shape [63] expected [64]");
}

TEST_F(SafetensorsTest, IndexNamingAMissingShardIsAnInputError) {
  float v = 1;
  write_safetensors(dir_ / "model-00001-of-00002.safetensors", {{"a", DType::F32, {1}, &v}});
  write_bytes(dir_ / "model.safetensors.index.json",
              R"({"metadata": {"total_size": 8}, "weight_map": {"a": "model-00001-of-00002.safetensors",)"
              R"( "lm_head.weight": "model-00002-of-00002.safetensors"}})");
  std::string msg = input_error_of([&] { TensorStore::open_dir(dir_); });
  EXPECT_NE(msg.find((dir_ / "model.safetensors.index.json").string() + ": "), std::string::npos) << msg;
  EXPECT_NE(msg.find("tensor lm_head.weight is mapped to model-00002-of-00002.safetensors, which does not exist"),
            std::string::npos)
      << msg;
}

// Found by tests/fuzz/safetensors_fuzz: std::filesystem::exists threw filesystem_error (an internal error, exit 1).
TEST_F(SafetensorsTest, IndexNamingAShardTheSystemCannotLookUpIsAnInputError) {
  const std::string long_name(300, 'x');  // longer than a file name may be (NAME_MAX 255)
  write_bytes(dir_ / "model.safetensors.index.json", R"({"weight_map": {"a": ")" + long_name + R"("}})");
  std::string msg = input_error_of([&] { TensorStore::open_dir(dir_); });
  EXPECT_NE(msg.find((dir_ / "model.safetensors.index.json").string() + ": tensor a is mapped to " + long_name +
                     ", which cannot be looked up: "),
            std::string::npos)
      << msg;
  msg = input_error_of([&] { TensorStore::open_dir(dir_ / long_name); });
  EXPECT_EQ(msg.rfind((dir_ / long_name).string() + ": ", 0), 0u) << msg;
}

TEST_F(SafetensorsTest, IndexNamingATensorTheShardLacksIsAnInputError) {
  float v = 1;
  write_safetensors(dir_ / "model-00001-of-00001.safetensors", {{"a", DType::F32, {1}, &v}});
  write_bytes(dir_ / "model.safetensors.index.json",
              R"({"weight_map": {"a": "model-00001-of-00001.safetensors", "b": "model-00001-of-00001.safetensors"}})");
  std::string msg = input_error_of([&] { TensorStore::open_dir(dir_); });
  EXPECT_NE(msg.find((dir_ / "model-00001-of-00001.safetensors").string() + ": tensor b: "), std::string::npos) << msg;
}

TEST_F(SafetensorsTest, BadIndexOrEmptyDirectoryIsAnInputError) {
  std::string msg = input_error_of([&] { TensorStore::open_dir(dir_); });
  EXPECT_NE(msg.find(dir_.string() + ": no model.safetensors"), std::string::npos) << msg;
  write_bytes(dir_ / "model.safetensors.index.json", R"({"weight_map": {"a": "../../etc/passwd"}})");
  msg = input_error_of([&] { TensorStore::open_dir(dir_); });
  EXPECT_NE(msg.find("weight_map: tensor a: \"../../etc/passwd\" is not a file name"), std::string::npos) << msg;
  write_bytes(dir_ / "model.safetensors.index.json", R"({"metadata": {}})");
  msg = input_error_of([&] { TensorStore::open_dir(dir_); });
  EXPECT_NE(msg.find("model.safetensors.index.json: missing key \"weight_map\""), std::string::npos) << msg;
}

}  // namespace
}  // namespace qsft
