// Data files -> token sequences: records read in chunks, parsed, converted and tokenized on all cores, then
// truncated and counted in file order (so the result does not depend on the thread count). Bad records stop the
// run (on_bad_record: error) or are counted and skipped (skip); either way the message names file, line, field.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/data_config.h"
#include "data/data_stats.h"
#include "data/example_encoder.h"
#include "data/progress.h"
#include "data/sequence_sink.h"

namespace qsft {

// The sequences of records, in record order: the tokens go to the sink, what is known of each sequence stays here.
struct EncodedRecords {
  explicit EncodedRecords(SequenceSink& s) : sequences(s) {}
  SequenceSink& sequences;
  std::vector<uint32_t> record_of;  // per sequence: the ordinal of its record among the records kept
  uint32_t records_kept = 0;
  int64_t turns_not_alternating = 0;  // ShareGPT conversations whose turns do not alternate user / assistant
  std::string first_not_alternating;  // where the first of them is
};

class FileEncoder {
 public:
  FileEncoder(const DataConfig& cfg, const ExampleEncoder& encoder);
  // Appends the sequences of files to out; stats gets their counts. progress counts bytes read.
  void encode(const std::vector<std::string>& files, bool eval, EncodedRecords& out, DataStats& stats,
              DataProgress& progress, uint64_t& bytes_done) const;

 private:
  struct Result;
  void keep(Encoded e, const std::string& where, EncodedRecords& out, DataStats& stats) const;

  const DataConfig& cfg_;
  const ExampleEncoder& encoder_;
};

}  // namespace qsft
