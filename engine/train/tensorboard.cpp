#include "engine/train/tensorboard.h"

#include <array>
#include <chrono>
#include <cstring>

#include "engine/base/error.h"

namespace qsft {

namespace {

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> t = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // reflected Castagnoli
      t[i] = c;
    }
    return t;
  }();
  return t;
}

uint32_t masked_crc(const void* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

// protobuf wire format: key = field << 3 | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32)
void varint(std::string& s, uint64_t v) {
  while (v >= 0x80) {
    s += char(uint8_t(v) | 0x80);
    v >>= 7;
  }
  s += char(uint8_t(v));
}
template <class T>
void fixed(std::string& s, int field, int wire, T v) {
  varint(s, uint64_t(field) << 3 | uint64_t(wire));
  s.append(reinterpret_cast<const char*>(&v), sizeof v);  // little-endian host
}
void bytes(std::string& s, int field, const std::string& b) {
  varint(s, uint64_t(field) << 3 | 2);
  varint(s, b.size());
  s += b;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Reading: a minimal protobuf walker over (field, wire type, value) for the fields we write.
struct Field {
  int number, wire;
  uint64_t int_value;
  std::string_view bytes_value;
};
bool next_field(std::string_view& s, Field& f) {
  auto read_varint = [&](uint64_t& v) {
    v = 0;
    for (int shift = 0; !s.empty() && shift < 64; shift += 7) {
      const uint8_t b = uint8_t(s[0]);
      s.remove_prefix(1);
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  uint64_t key;
  if (s.empty() || !read_varint(key)) return false;
  f.number = int(key >> 3);
  f.wire = int(key & 7);
  const size_t width = f.wire == 1 ? 8 : f.wire == 5 ? 4 : 0;
  if (f.wire == 0) return read_varint(f.int_value);
  if (width) {
    if (s.size() < width) return false;
    f.int_value = 0;
    std::memcpy(&f.int_value, s.data(), width);
    s.remove_prefix(width);
    return true;
  }
  uint64_t n;
  if (f.wire != 2 || !read_varint(n) || s.size() < n) return false;
  f.bytes_value = s.substr(0, n);
  s.remove_prefix(n);
  return true;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  const auto& t = crc_table();
  uint32_t c = 0xffffffffu;
  const uint8_t* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) c = t[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& dir) {
  const double t = now_seconds();
  path_ = dir / ("events.out.tfevents." + std::to_string(int64_t(t)) + ".qwen-sft");
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) throw input_error(path_.string(), "cannot create the TensorBoard event file");
  std::string ev;
  fixed(ev, 1, 1, t);
  bytes(ev, 3, "brain.Event:2");
  record(ev);
}

void TensorBoardWriter::scalar(const std::string& tag, float value, int64_t step) {
  std::string v;
  bytes(v, 1, tag);
  fixed(v, 2, 5, value);
  summary_value(v, step);
}

void TensorBoardWriter::text(const std::string& tag, const std::string& markdown, int64_t step) {
  // tf.summary.text's Value: {1: tag, 9: metadata {1: plugin_data {1: plugin_name "text"}},
  // 8: tensor {1: dtype DT_STRING (7), 2: tensor_shape {} (a scalar), 8: string_val}}
  std::string plugin, metadata, tensor, v;
  bytes(plugin, 1, "text");
  bytes(metadata, 1, plugin);
  varint(tensor, 1 << 3 | 0);
  varint(tensor, 7);
  bytes(tensor, 2, "");
  bytes(tensor, 8, markdown);
  bytes(v, 1, tag);
  bytes(v, 9, metadata);
  bytes(v, 8, tensor);
  summary_value(v, step);
}

void TensorBoardWriter::summary_value(const std::string& value, int64_t step) {
  std::string summary, ev;
  bytes(summary, 1, value);
  fixed(ev, 1, 1, now_seconds());
  varint(ev, 2 << 3 | 0);
  varint(ev, uint64_t(step));
  bytes(ev, 5, summary);
  record(ev);
}

void TensorBoardWriter::record(const std::string& event) {
  const uint64_t len = event.size();
  const uint32_t len_crc = masked_crc(&len, 8), data_crc = masked_crc(event.data(), event.size());
  out_.write(reinterpret_cast<const char*>(&len), 8);
  out_.write(reinterpret_cast<const char*>(&len_crc), 4);
  out_.write(event.data(), std::streamsize(event.size()));
  out_.write(reinterpret_cast<const char*>(&data_crc), 4);
  out_.flush();
  if (!out_) throw input_error(path_.string(), "cannot write the TensorBoard event file (disk full?)");
}

std::vector<ScalarEvent> read_tensorboard_scalars(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<ScalarEvent> out;
  size_t pos = 0;
  while (pos + 12 <= all.size()) {
    uint64_t len;
    uint32_t len_crc, data_crc;
    std::memcpy(&len, all.data() + pos, 8);
    std::memcpy(&len_crc, all.data() + pos + 8, 4);
    if (len_crc != masked_crc(&len, 8) || pos + 16 + len > all.size())
      throw input_error(file.string(), "corrupt record header at byte " + std::to_string(pos));
    std::string_view ev(all.data() + pos + 12, len);
    std::memcpy(&data_crc, all.data() + pos + 12 + len, 4);
    if (data_crc != masked_crc(ev.data(), ev.size()))
      throw input_error(file.string(), "record CRC mismatch at byte " + std::to_string(pos));
    pos += 16 + len;
    int64_t step = 0;
    std::string_view summary;
    for (Field f; next_field(ev, f);) {
      if (f.number == 2 && f.wire == 0) step = int64_t(f.int_value);
      if (f.number == 5 && f.wire == 2) summary = f.bytes_value;
    }
    for (Field f; next_field(summary, f);) {
      if (f.number != 1 || f.wire != 2) continue;
      ScalarEvent s{"", 0, step};
      std::string_view value = f.bytes_value;
      for (Field g; next_field(value, g);) {
        if (g.number == 1 && g.wire == 2) s.tag = std::string(g.bytes_value);
        if (g.number == 2 && g.wire == 5) std::memcpy(&s.value, &g.int_value, 4);
      }
      out.push_back(s);
    }
  }
  return out;
}

}  // namespace qsft
