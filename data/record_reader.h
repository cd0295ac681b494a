// Streaming reader of the records of one data file, without loading the file: JSONL (*.jsonl, *.ndjson: one
// record a line, blank lines skipped), a JSON array of records, or JSON values one after another (a single
// object, or objects one per line in a *.json file); any of them gzip-compressed (*.jsonl.gz, *.json.gz: the
// file is decompressed as it is read). Memory stays within one read chunk plus the largest record.
// Text is UTF-8: a leading UTF-8 byte order mark is skipped; UTF-16 and UTF-32 text is an InputError saying so.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

struct gzFile_s;  // zlib's file; reading through it also reads files that are not compressed

namespace qsft {

struct RawRecord {
  std::string text;   // the record's JSON text
  int64_t line = 0;   // 1-based line where it starts
  int64_t index = 0;  // 0-based position among the file's records
};

class RecordReader {
 public:
  // InputError when the file cannot be opened or is not UTF-8.
  explicit RecordReader(const std::string& path);
  // The next record; false at the end of the file. A broken file structure (an array never closed, text between
  // records) is an InputError naming the file and line; a malformed record itself is left to its parser.
  bool next(RawRecord& out);

  const std::string& path() const { return path_; }
  uint64_t bytes_read() const;  // of the file as it is on disk (compressed bytes for a gzip file)
  // "file line N" (JSONL) or "file record K (line N)" (arrays and value streams): where a record's errors point.
  std::string where(const RawRecord& r) const;

 private:
  enum class Mode { unknown, lines, array, values };
  bool fill();            // reads the next chunk; false at the end of the file
  void check_encoding();  // at the start of the file: skips a UTF-8 byte order mark, refuses UTF-16/32
  void discard_consumed();
  bool next_line(RawRecord& out);
  bool next_value(RawRecord& out);
  bool skip_space();      // over whitespace to the next character (reading more as needed); false at the end
  void scan_value_end();  // pos_ from a value's first character to one past its end (reading more as needed)
  [[noreturn]] void fail(const std::string& what) const;

  std::string path_;
  std::unique_ptr<gzFile_s, int (*)(gzFile_s*)> file_;
  Mode mode_ = Mode::unknown;
  std::string buf_;
  size_t pos_ = 0;     // scan position in buf_
  int64_t line_ = 1;   // line of buf_[pos_]
  int64_t index_ = 0;  // records returned
  bool eof_ = false;
  bool array_open_ = false, array_closed_ = false;
};

}  // namespace qsft
