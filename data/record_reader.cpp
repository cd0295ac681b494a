#include "data/record_reader.h"

#include "engine/base/error.h"

namespace qsft {

namespace {

constexpr size_t kChunk = 1 << 20;

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

bool has_suffix(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && std::string_view(s).substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

RecordReader::RecordReader(const std::string& path) : path_(path), file_(std::fopen(path.c_str(), "rb"), &std::fclose) {
  if (!file_) throw input_error(path, "cannot open the file");
  if (has_suffix(path, ".gz")) throw input_error(path, "gzip files are not supported; decompress it first");
  mode_ = has_suffix(path, ".jsonl") || has_suffix(path, ".ndjson") ? Mode::lines : Mode::unknown;
}

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
  size_t n = std::fread(buf_.data() + old, 1, kChunk, file_.get());
  buf_.resize(old + n);
  bytes_read_ += n;
  if (n < kChunk) {
    if (std::ferror(file_.get())) throw input_error(path_, "read error");
    eof_ = true;
  }
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
        if (escaped) escaped = false;
        else if (c == '\\') escaped = true;
        else if (c == '"') in_string = false;
        else continue;
        if (!in_string && depth == 0) {  // a top-level string ends
          ++pos_;
          return;
        }
        continue;
      }
      if (c == '"') in_string = true;
      else if (c == '{' || c == '[') ++depth;
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
