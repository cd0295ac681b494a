#include "engine/io/safetensors.h"

#include <fcntl.h>
#include <simdjson.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include "engine/base/half.h"
#include "engine/base/json_reader.h"
#include "engine/base/json_writer.h"

namespace qsft {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the limit the reference implementation enforces
constexpr const char* kSupportedDTypes = "F32, BF16, F16, I32, I64, U8";
constexpr DType kAllDTypes[] = {DType::F32, DType::BF16, DType::F16, DType::I32, DType::I64, DType::U8};

std::optional<DType> parse_dtype(std::string_view s) {
  for (DType d : kAllDTypes)
    if (s == dtype_name(d)) return d;
  return std::nullopt;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t shape_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string offsets_str(uint64_t begin, uint64_t end) {
  return "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// A JSON array of non-negative integers, or nullopt.
std::optional<std::vector<uint64_t>> uint_array(simdjson::dom::element e) {
  simdjson::dom::array arr;
  if (e.get_array().get(arr)) return std::nullopt;
  std::vector<uint64_t> v;
  for (simdjson::dom::element x : arr) {
    uint64_t u;
    if (x.get_uint64().get(u)) return std::nullopt;
    v.push_back(u);
  }
  return v;
}

// One header entry {"dtype", "shape", "data_offsets"}, checked against the data section [data, data + data_size).
TensorInfo parse_entry(const std::string& path, const std::string& name, simdjson::dom::element value,
                       const unsigned char* data, uint64_t data_size) {
  auto bad = [&](const std::string& what) { return input_error(path, "tensor " + name + ": " + what); };
  simdjson::dom::object o;
  if (value.get_object().get(o)) throw bad("header entry is not a JSON object");
  std::string_view dtype_text;
  if (o["dtype"].get_string().get(dtype_text)) throw bad("missing or non-string \"dtype\"");
  std::optional<DType> dtype = parse_dtype(dtype_text);
  if (!dtype)
    throw input_error(path, "unsupported dtype " + std::string(dtype_text) + " for tensor " + name +
                                " (supported: " + kSupportedDTypes + ")");
  simdjson::dom::element shape_e, offsets_e;
  if (o["shape"].get(shape_e)) throw bad("missing \"shape\"");
  if (o["data_offsets"].get(offsets_e)) throw bad("missing \"data_offsets\"");
  auto dims = uint_array(shape_e);
  if (!dims) throw bad("\"shape\" is not a list of non-negative integers");
  auto offsets = uint_array(offsets_e);
  if (!offsets || offsets->size() != 2) throw bad("\"data_offsets\" is not a list of 2 non-negative integers");
  uint64_t begin = (*offsets)[0], end = (*offsets)[1];
  if (begin > end) throw bad(offsets_str(begin, end) + " begin after end");
  if (end > data_size)
    throw bad(offsets_str(begin, end) + " end beyond the data section (" + std::to_string(data_size) +
              " bytes; truncated file?)");

  TensorInfo t;
  t.name = name;
  t.dtype = *dtype;
  t.file = path;
  uint64_t needed = dtype_size(*dtype);
  for (uint64_t d : *dims) {
    if (d > uint64_t(INT64_MAX) || __builtin_mul_overflow(needed, d, &needed))
      throw bad("shape too large: its byte count overflows 64 bits");
    t.shape.push_back(int64_t(d));
  }
  if (needed != end - begin)
    throw bad("dtype " + std::string(dtype_text) + " and shape " + shape_str(t.shape) + " need " +
              std::to_string(needed) + " bytes, but " + offsets_str(begin, end) + " hold " +
              std::to_string(end - begin));
  t.data = data + begin;
  t.nbytes = size_t(end - begin);
  return t;
}

// Two tensors may not share bytes (empty tensors share none).
void check_no_overlap(const std::string& path, const std::vector<TensorInfo>& tensors, const unsigned char* data) {
  std::vector<const TensorInfo*> by_begin;
  for (auto& t : tensors)
    if (t.nbytes) by_begin.push_back(&t);
  std::sort(by_begin.begin(), by_begin.end(), [](auto* a, auto* b) { return a->data < b->data; });
  auto offsets = [&](const TensorInfo* t) {
    uint64_t begin = uint64_t(static_cast<const unsigned char*>(t->data) - data);
    return offsets_str(begin, begin + t->nbytes);
  };
  for (size_t i = 1; i < by_begin.size(); ++i) {
    const TensorInfo *a = by_begin[i - 1], *b = by_begin[i];
    if (static_cast<const unsigned char*>(a->data) + a->nbytes > b->data)
      throw input_error(
          path, "tensors " + a->name + " (" + offsets(a) + ") and " + b->name + " (" + offsets(b) + ") overlap");
  }
}

// Every element of a floating-point tensor as fp32, to store(i, value); the bytes may be unaligned.
template <class Store>
void for_each_as_f32(const TensorInfo& t, Store store) {
  const char* p = static_cast<const char*>(t.data);
  size_t n = size_t(t.numel());
  auto load16 = [p](size_t i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    return h;
  };
  switch (t.dtype) {
    case DType::F32:
      for (size_t i = 0; i < n; ++i) {
        float v;
        std::memcpy(&v, p + 4 * i, 4);
        store(i, v);
      }
      return;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) store(i, bf16_to_f32(load16(i)));
      return;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) store(i, f16_to_f32(load16(i)));
      return;
    default:
      throw input_error(t.file, "tensor " + t.name + ": dtype " + dtype_name(t.dtype) +
                                    " where a floating-point tensor (F32, BF16, F16) is expected");
  }
}

// The order the Python library writes tensors in: larger dtypes first, then by name.
int write_rank(DType d) {
  switch (d) {
    case DType::I64: return 0;
    case DType::F32: return 1;
    case DType::I32: return 2;
    case DType::BF16: return 3;
    case DType::F16: return 4;
    case DType::U8: return 5;
  }
  return 6;
}

size_t entry_nbytes(const SafetensorsEntry& e) { return size_t(shape_numel(e.shape)) * dtype_size(e.dtype); }

// Whether path exists. A path the system cannot look up (a name too long, a folder without permission) is an
// InputError: "where: what: reason".
bool path_exists(const std::filesystem::path& path, const std::string& where, const std::string& what) {
  std::error_code ec;
  const bool exists = std::filesystem::exists(path, ec);
  if (ec) throw input_error(where, what + ", which cannot be looked up: " + ec.message());
  return exists;
}

}  // namespace

int64_t TensorInfo::numel() const { return shape_numel(shape); }

std::string TensorInfo::shape_str() const { return qsft::shape_str(shape); }

Tensor TensorInfo::view() const {
  if (shape.size() > size_t(Tensor::kMaxDims))
    throw input_error(file, "tensor " + name + ": " + std::to_string(shape.size()) + " dimensions, at most " +
                                std::to_string(Tensor::kMaxDims) + " supported");
  Tensor t;
  t.data = const_cast<void*>(data);
  t.dtype = dtype;
  t.ndim = int(shape.size());
  std::copy(shape.begin(), shape.end(), t.shape.begin());
  return t;
}

void copy_to_f32(const TensorInfo& t, float* dst) {
  for_each_as_f32(t, [dst](size_t i, float v) { dst[i] = v; });
}

void copy_to_bf16(const TensorInfo& t, uint16_t* dst) {
  if (t.dtype == DType::BF16) {
    if (t.nbytes) std::memcpy(dst, t.data, t.nbytes);  // (an empty tensor's dst may be null: memcpy's UB)
    return;
  }
  for_each_as_f32(t, [dst](size_t i, float v) { dst[i] = f32_to_bf16(v); });
}

// ---- SafetensorsFile ----

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path_in) {
  SafetensorsFile f;
  f.path_ = path_in.string();
  const std::string& path = f.path_;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw input_error(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw input_error(path, "not a regular file");
  }
  uint64_t size = uint64_t(st.st_size);
  if (size < 8) {
    ::close(fd);
    throw input_error(
        path, "file is " + std::to_string(size) + " bytes, too short for the 8-byte header length (truncated file?)");
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);
  if (map == MAP_FAILED) throw input_error(path, std::string("cannot map: ") + std::strerror(map_errno));
  f.map_ = map;  // from here on the destructor unmaps, also when parsing throws
  f.map_size_ = size;

  const auto* bytes = static_cast<const unsigned char*>(map);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];  // little-endian
  if (header_len > kMaxHeaderBytes)
    throw input_error(path, "header length " + std::to_string(header_len) + " exceeds the limit of " +
                                std::to_string(kMaxHeaderBytes) + " bytes (not a safetensors file?)");
  if (header_len > size - 8)
    throw input_error(path, "header length " + std::to_string(header_len) + " runs past the end of the file (" +
                                std::to_string(size) + " bytes; truncated file?)");

  simdjson::dom::parser parser;
  simdjson::padded_string header(reinterpret_cast<const char*>(bytes + 8), size_t(header_len));
  simdjson::dom::object root;
  if (auto err = parser.parse(header).get_object().get(root))
    throw input_error(path, std::string("header is not a JSON object: ") + simdjson::error_message(err));
  const unsigned char* data = bytes + 8 + header_len;
  uint64_t data_size = size - 8 - header_len;
  std::set<std::string_view> seen;
  for (auto field : root) {
    std::string key(field.key);
    if (!seen.insert(field.key).second) throw input_error(path, "key \"" + key + "\" appears twice in the header");
    if (key != "__metadata__") {
      f.tensors_.push_back(parse_entry(path, key, field.value, data, data_size));
      continue;
    }
    simdjson::dom::object meta;
    if (field.value.get_object().get(meta)) throw input_error(path, "__metadata__ is not a JSON object");
    for (auto m : meta) {
      std::string_view v;
      if (m.value.get_string().get(v))
        throw input_error(path, "__metadata__ key \"" + std::string(m.key) + "\": value is not a string");
      f.metadata_[std::string(m.key)] = std::string(v);
    }
  }
  check_no_overlap(path, f.tensors_, data);
  return f;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept { *this = std::move(o); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    if (map_) ::munmap(map_, map_size_);
    path_ = std::move(o.path_);
    map_ = std::exchange(o.map_, nullptr);
    map_size_ = std::exchange(o.map_size_, 0);
    tensors_ = std::move(o.tensors_);
    metadata_ = std::move(o.metadata_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  for (auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

// ---- TensorStore ----

TensorStore TensorStore::open_dir(const std::filesystem::path& dir) {
  TensorStore s;
  s.dir_ = dir.string();
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw input_error(s.dir_, "not a directory" + (ec ? " (" + ec.message() + ")" : std::string()));
  std::filesystem::path single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
  if (path_exists(single, s.dir_, "model.safetensors")) {
    s.source_ = "model.safetensors";
    s.files_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(single)));
    for (auto& t : s.files_.back()->tensors()) s.by_name_[t.name] = &t;
    return s;
  }
  if (!path_exists(index, s.dir_, "model.safetensors.index.json"))
    throw input_error(s.dir_, "no model.safetensors or model.safetensors.index.json (not a model directory?)");
  s.source_ = "model.safetensors.index.json";
  const std::string index_path = index.string();
  const json::Document doc(index_path, json::read_text_file(index_path));
  const simdjson::dom::element root = doc.root();
  simdjson::dom::object weight_map;
  if (root["weight_map"].get_object().get(weight_map))
    throw input_error(index_path, "missing key \"weight_map\" (an object {tensor name: shard file})");
  std::map<std::string, std::vector<std::string>> names_by_shard;
  for (auto field : weight_map) {
    std::string name(field.key);
    std::string_view shard;
    if (field.value.get_string().get(shard))
      throw input_error(index_path, "weight_map: tensor " + name + ": value is not a file name string");
    if (shard.find('/') != std::string_view::npos || shard == ".." || shard.empty())
      throw input_error(index_path, "weight_map: tensor " + name + ": \"" + std::string(shard) +
                                        "\" is not a file name inside " + s.dir_);
    names_by_shard[std::string(shard)].push_back(name);
  }
  if (names_by_shard.empty()) throw input_error(index_path, "weight_map is empty");
  for (auto& [shard, names] : names_by_shard) {
    std::filesystem::path shard_path = dir / shard;
    if (!path_exists(shard_path, index_path, "tensor " + names.front() + " is mapped to " + shard))
      throw input_error(index_path, "tensor " + names.front() + " is mapped to " + shard + ", which does not exist");
    s.files_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(shard_path)));
    const SafetensorsFile& file = *s.files_.back();
    for (auto& name : names) {
      const TensorInfo* t = file.find(name);
      if (!t)
        throw input_error(file.path(), "tensor " + name + ": mapped to this file by " + index_path + " but not in it");
      s.by_name_[name] = t;
    }
  }
  return s;
}

const TensorInfo* TensorStore::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const TensorInfo& TensorStore::require(const std::string& name, const std::vector<int64_t>& expected_shape) const {
  const TensorInfo* t = find(name);
  if (!t) throw input_error(dir_, "missing tensor " + name + " (looked in " + source_ + ")");
  if (t->shape != expected_shape)
    throw input_error(t->file,
                      "tensor " + name + ": shape " + t->shape_str() + " expected " + shape_str(expected_shape));
  return *t;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> v;
  for (auto& [name, t] : by_name_) v.push_back(name);
  return v;
}

// ---- writing ----

void write_safetensors(const std::filesystem::path& path, const std::vector<SafetensorsEntry>& entries,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const SafetensorsEntry*> order;
  for (auto& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) {
    int ra = write_rank(a->dtype), rb = write_rank(b->dtype);
    return ra != rb ? ra < rb : a->name < b->name;
  });
  Json header = Json::object();
  if (!metadata.empty()) {
    Json meta = Json::object();
    for (auto& [k, v] : metadata) meta.set(k, v);
    header.set("__metadata__", std::move(meta));
  }
  std::set<std::string_view> names;
  size_t offset = 0;
  for (auto* e : order) {
    QSFT_CHECK(names.insert(e->name).second, "tensor " + e->name + " given twice");
    QSFT_CHECK(e->name != "__metadata__", "a tensor may not be called __metadata__");
    Json shape = Json::array();
    for (int64_t d : e->shape) shape.push(d);
    size_t end = offset + entry_nbytes(*e);
    header.set(e->name, Json::object()
                            .set("dtype", dtype_name(e->dtype))
                            .set("shape", std::move(shape))
                            .set("data_offsets", Json::array({offset, end})));
    offset = end;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned
  write_file_atomic(path, [&](std::ostream& out) {
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = (uint64_t(text.size()) >> (8 * i)) & 0xff;
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), std::streamsize(text.size()));
    for (auto* e : order) out.write(static_cast<const char*>(e->data), std::streamsize(entry_nbytes(*e)));
  });
}

void write_model_safetensors(const std::filesystem::path& dir, const std::vector<SafetensorsEntry>& entries,
                             const std::map<std::string, std::string>& metadata, size_t max_shard_bytes) {
  std::vector<const SafetensorsEntry*> by_name;
  for (auto& e : entries) by_name.push_back(&e);
  std::sort(by_name.begin(), by_name.end(), [](auto* a, auto* b) { return a->name < b->name; });
  std::vector<std::vector<SafetensorsEntry>> shards;
  size_t shard_bytes = 0, total = 0;
  for (auto* e : by_name) {
    size_t n = entry_nbytes(*e);
    if (shards.empty() || (shard_bytes + n > max_shard_bytes && !shards.back().empty())) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(*e);
    shard_bytes += n;
    total += n;
  }
  if (shards.size() <= 1) {
    write_safetensors(dir / "model.safetensors", entries, metadata);
    return;
  }
  Json weight_map = Json::object();
  for (size_t k = 0; k < shards.size(); ++k) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", k + 1, shards.size());
    write_safetensors(dir / name, shards[k], metadata);
    for (auto& e : shards[k]) weight_map.set(e.name, name);
  }
  Json index = Json::object();
  index.set("metadata", Json::object().set("total_size", total));
  index.set("weight_map", std::move(weight_map));
  write_file_atomic(dir / "model.safetensors.index.json", index.dump({.indent = 2, .sort_keys = true}) + "\n");
}

}  // namespace qsft
