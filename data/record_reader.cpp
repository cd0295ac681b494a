#include "data/record_reader.h"

#include <zlib.h>

#include "engine/base/error.h"

namespace qsft {

namespace {

constexpr size_t kChunk = 1 << 20;

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// The encoding of text that is not UTF-8, from its byte order mark or, without one, from the zero bytes around
// its first character (JSON text starts with an ASCII character: RFC 4627 section 3); nullptr for UTF-8.
const char* non_utf8_encoding(std::string_view head) {
  auto starts = [&](std::string_view bytes) { return head.starts_with(bytes); };
  using namespace std::string_view_literals;
  if (starts("\xFF\xFE\0\0"sv) || (head.size() >= 4 && head[0] && !head[1] && !head[2] && !head[3]))
    return "UTF-32 (little-endian)";
  if (starts("\0\0\xFE\xFF"sv) || (head.size() >= 4 && !head[0] && !head[1] && !head[2] && head[3]))
    return "UTF-32 (big-endian)";
  if (starts("\xFF\xFE"sv) || (head.size() >= 2 && head[0] && !head[1])) return "UTF-16 (little-endian)";
  if (starts("\xFE\xFF"sv) || (head.size() >= 2 && !head[0] && head[1])) return "UTF-16 (big-endian)";
  return nullptr;
}

}  // namespace

RecordReader::RecordReader(const std::string& path) : path_(path), file_(gzopen(path.c_str(), "rb"), &gzclose) {
  if (!file_) throw input_error(path, "cannot open the file");
  gzbuffer(file_.get(), kChunk);
  std::string_view name = path;
  if (name.ends_with(".gz")) name.remove_suffix(3);
  mode_ = name.ends_with(".jsonl") || name.ends_with(".ndjson") ? Mode::lines : Mode::unknown;
  check_encoding();
}

void RecordReader::check_encoding() {
  fill();
  if (const char* encoding = non_utf8_encoding(buf_))
    throw input_error(path_, std::string("the file is ") + encoding + " text; save it as UTF-8");
  if (std::string_view(buf_).starts_with("\xEF\xBB\xBF")) pos_ = 3;  // the UTF-8 byte order mark
}

uint64_t RecordReader::bytes_read() const { return uint64_t(gzoffset(file_.get())); }

std::string RecordReader::where(const RawRecord& r) const {
  if (mode_ == Mode::lines) return path_ + " line " + std::to_string(r.line);
  return path_ + " record " + std::to_string(r.index) + " (line " + std::to_string(r.line) + ")";
}

void RecordReader::fail(const std::string& what) const {
  throw input_error(path_ + " line " + std::to_string(line_), what);
}

bool RecordReader::fill() {
  if (eof_) return false;
  const size_t old = buf_.size();
  buf_.resize(old + kChunk);
  const int n = gzread(file_.get(), buf_.data() + old, unsigned(kChunk));
  int err = Z_OK;
  const char* message = gzerror(file_.get(), &err);
  if (n < 0 || (err != Z_OK && err != Z_STREAM_END)) throw input_error(path_, std::string("read error: ") + message);
  buf_.resize(old + size_t(n));
  eof_ = size_t(n) < kChunk;
  return n > 0;
}

void RecordReader::discard_consumed() {
  buf_.erase(0, pos_);
  pos_ = 0;
}

bool RecordReader::next(RawRecord& out) {
  discard_consumed();
  if (mode_ == Mode::unknown) {
    if (!skip_space()) return false;
    mode_ = buf_[pos_] == '[' ? Mode::array : Mode::values;
  }
  return mode_ == Mode::lines ? next_line(out) : next_value(out);
}

bool RecordReader::next_line(RawRecord& out) {
  for (;;) {
    size_t nl = buf_.find('\n', pos_);
    while (nl == std::string::npos && fill()) nl = buf_.find('\n', pos_);
    if (nl == std::string::npos && pos_ == buf_.size()) return false;
    size_t end = nl == std::string::npos ? buf_.size() : nl;
    std::string_view line(buf_.data() + pos_, end - pos_);
    const int64_t line_no = line_;
    pos_ = nl == std::string::npos ? end : end + 1;
    ++line_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    out.text.assign(line);
    out.line = line_no;
    out.index = index_++;
    return true;
  }
}

bool RecordReader::skip_space() {
  for (;;) {
    while (pos_ < buf_.size() && is_space(buf_[pos_])) line_ += buf_[pos_++] == '\n';
    if (pos_ < buf_.size()) return true;
    if (!fill()) return false;
  }
}

bool RecordReader::next_value(RawRecord& out) {
  if (mode_ == Mode::array && !array_open_) {
    skip_space();
    ++pos_;  // '['
    array_open_ = true;
  }
  const bool have = skip_space();
  if (mode_ == Mode::array) {
    if (!have) fail("the JSON array is not closed (missing ']')");
    if (array_closed_) fail("text after the end of the JSON array");
    if (buf_[pos_] == ']') {
      ++pos_;
      array_closed_ = true;
      if (skip_space()) fail("text after the end of the JSON array");
      return false;
    }
    if (index_ > 0) {
      if (buf_[pos_] != ',') fail("expected ',' or ']' between the array's records");
      ++pos_;
      if (!skip_space()) fail("the JSON array is not closed (missing ']')");
    }
  } else if (!have) {
    return false;
  }
  if (const char c = buf_[pos_]; c == ',' || c == ']' || c == '}')
    fail(std::string("'") + c + "' where record " + std::to_string(index_) + " should start" +
         (mode_ == Mode::values ? " (records one after another in a .json file take no commas: write a JSON array "
                                  "[record, record] or one record a line)"
                                : ""));
  const size_t start = pos_;
  out.line = line_;
  scan_value_end();
  out.text.assign(buf_, start, pos_ - start);
  out.index = index_++;
  return true;
}

void RecordReader::scan_value_end() {
  const int64_t start_line = line_;
  const char first = buf_[pos_];
  if (first != '{' && first != '[' && first != '"') {  // a scalar: up to the next delimiter
    for (;;) {
      while (pos_ < buf_.size() && !is_space(buf_[pos_]) && buf_[pos_] != ',' && buf_[pos_] != ']') ++pos_;
      if (pos_ < buf_.size() || !fill()) return;
    }
  }
  int depth = 0;
  bool in_string = false, escaped = false;
  for (;;) {
    for (; pos_ < buf_.size(); ++pos_) {
      const char c = buf_[pos_];
      if (c == '\n') ++line_;
      if (in_string) {
        if (escaped)
          escaped = false;
        else if (c == '\\')
          escaped = true;
        else if (c == '"')
          in_string = false;
        else
          continue;
        if (!in_string && depth == 0) {  // a top-level string ends
          ++pos_;
          return;
        }
        continue;
      }
      if (c == '"')
        in_string = true;
      else if (c == '{' || c == '[')
        ++depth;
      else if ((c == '}' || c == ']') && --depth == 0) {
        ++pos_;
        return;
      }
    }
    if (!fill()) {
      line_ = start_line;
      fail("a record starting here is never closed (unbalanced brackets or quotes)");
    }
  }
}

}  // namespace qsft
