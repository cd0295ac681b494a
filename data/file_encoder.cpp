#include "data/file_encoder.h"

#include <simdjson.h>

#include <algorithm>
#include <optional>

#include "data/parallel_for.h"
#include "data/record_encoder.h"
#include "data/record_format_internal.h"
#include "data/record_reader.h"
#include "engine/base/error.h"

namespace qsft {

namespace {

constexpr size_t kChunkRecords = 4096;
constexpr size_t kChunkBytes = 32 << 20;

RecordFormat file_format(const std::optional<RecordFormat>& forced, const RawRecord& first, const std::string& where) {
  if (forced) return *forced;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto err = parser.parse(first.text).get(root))
    throw InputError(where + ": not valid JSON: " + simdjson::error_message(err));
  try {
    return detect_format(root);
  } catch (const InputError& e) {
    throw InputError(where + ": " + e.what());
  }
}

bool has_trained_target(std::span<const uint8_t> mask) {
  return std::find(mask.begin() + std::min<ptrdiff_t>(1, ptrdiff_t(mask.size())), mask.end(), 1) != mask.end();
}

}  // namespace

struct FileEncoder::Result {
  Encoded encoded;
  bool turns_alternate = true;
  std::string error;  // empty: encoded is valid
  bool fatal = false;
};

FileEncoder::FileEncoder(const DataConfig& cfg, const ExampleEncoder& encoder) : cfg_(cfg), encoder_(encoder) {}

void FileEncoder::keep(Encoded e, const std::string& where, EncodedRecords& out, DataStats& stats) const {
  const int64_t len = int64_t(e.ids.size());
  const int64_t max = cfg_.max_length;
  stats.add_length(len);
  bool kept_any = false;
  auto add = [&](size_t begin, size_t end, const std::string& piece_where) {
    std::span<const int32_t> ids(e.ids.data() + begin, end - begin);
    std::span<const uint8_t> mask(e.mask.data() + begin, end - begin);
    if (!has_trained_target(mask)) {
      stats.add_no_trained(piece_where);
      return;
    }
    out.sequences.add(ids, mask);
    out.record_of.push_back(out.records_kept);
    kept_any = true;
  };
  if (len <= max) {
    add(0, size_t(len), where);
  } else if (cfg_.truncation == "drop") {
    ++stats.dropped_too_long;
  } else if (cfg_.truncation == "split") {
    ++stats.truncated;
    for (int64_t begin = 0, piece = 0; begin < len; begin += max, ++piece)
      add(size_t(begin), size_t(std::min(len, begin + max)), where + " piece " + std::to_string(piece));
  } else {
    ++stats.truncated;
    add(0, size_t(max), where);
  }
  if (kept_any) ++out.records_kept;
}

void FileEncoder::encode(const std::vector<std::string>& files, bool eval, EncodedRecords& out, DataStats& stats,
                         DataProgress& progress, uint64_t& bytes_done) const {
  const std::optional<RecordFormat> forced = configured_format(cfg_);
  const Templates templates{cfg_.prompt_template, cfg_.completion_template};
  const bool skip_bad = cfg_.on_bad_record == "skip";
  for (const std::string& path : files) {
    RecordReader reader(path);
    FileStats fs{path, "", 0, eval};
    std::optional<RecordFormat> format = forced;
    std::vector<RawRecord> chunk;
    std::vector<Result> results;
    for (bool more = true; more;) {
      chunk.clear();
      size_t chunk_bytes = 0;
      for (RawRecord r; chunk.size() < kChunkRecords && chunk_bytes < kChunkBytes && (more = reader.next(r));) {
        chunk_bytes += r.text.size();
        chunk.push_back(std::move(r));
      }
      if (chunk.empty()) break;
      if (!format) {
        format = file_format(forced, chunk.front(), reader.where(chunk.front()));
        fs.format = format_name(*format);
      }
      results.assign(chunk.size(), Result{});
      parallel_for(chunk.size(), cfg_.num_threads, [&](size_t i) {
        thread_local simdjson::dom::parser parser;
        Result& res = results[i];
        try {
          simdjson::dom::element root;
          if (auto err = parser.parse(chunk[i].text).get(root))
            throw InputError(std::string("not valid JSON: ") + simdjson::error_message(err));
          const Example example = to_example(*format, root, templates);
          res.turns_alternate = example.turns_alternate;
          res.encoded = encoder_.encode(example);
        } catch (const NoChatFormat& e) {
          res.error = e.what();
          res.fatal = true;
        } catch (const InputError& e) {
          res.error = e.what();
        }
      });
      for (size_t i = 0; i < chunk.size(); ++i) {
        const std::string where = reader.where(chunk[i]);
        Result& res = results[i];
        ++fs.records;
        if (res.fatal) throw InputError(res.error);
        if (!res.error.empty()) {
          const std::string message = where + ": " + res.error;
          if (!skip_bad) throw InputError(message + " (data.on_bad_record: skip skips such records)");
          stats.add_bad_record(message);
          continue;
        }
        if (!res.turns_alternate && out.turns_not_alternating++ == 0) out.first_not_alternating = where;
        keep(std::move(res.encoded), where, out, stats);
      }
      progress.set(bytes_done + reader.bytes_read());
    }
    if (fs.format.empty()) fs.format = format ? format_name(*format) : "(empty)";
    bytes_done += reader.bytes_read();
    stats.records += fs.records;
    stats.files.push_back(std::move(fs));
  }
}

}  // namespace qsft
