// A TensorBoard event file written by us (no protobuf library): TFRecord framing
//   uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
// around Event protos: {1: wall_time (double), 2: step (int64), 3: file_version | 5: Summary {1: Value {1: tag,
// 2: simple_value (float)}}}. masked_crc = ((crc >> 15) | (crc << 17)) + 0xa282ead8, CRC-32C (Castagnoli).
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace qsft {

uint32_t crc32c(const void* data, size_t n);

class TensorBoardWriter {
 public:
  // Creates DIR/events.out.tfevents.<seconds>.qwen-sft and writes the file_version event.
  explicit TensorBoardWriter(const std::filesystem::path& dir);
  void scalar(const std::string& tag, float value, int64_t step);
  // A text summary (TensorBoard's text plugin, as tf.summary.text writes it; markdown is rendered).
  void text(const std::string& tag, const std::string& markdown, int64_t step);
  const std::filesystem::path& path() const { return path_; }

 private:
  void summary_value(const std::string& value, int64_t step);  // an Event {wall_time, step, summary {value}}
  void record(const std::string& event);
  std::filesystem::path path_;
  std::ofstream out_;
};

// Reading back (for tests and tools): every scalar of an event file, verifying each record's CRCs.
struct ScalarEvent {
  std::string tag;
  float value;
  int64_t step;
};
std::vector<ScalarEvent> read_tensorboard_scalars(const std::filesystem::path& file);

}  // namespace qsft
