// Where the pipeline puts token sequences as they are made, in record order: the token cache file
// (data/cache_writer.h), so memory stays bounded, or memory when there is no cache to write.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "data/sequence_set.h"

namespace qsft {

class SequenceSink {
 public:
  virtual ~SequenceSink() = default;
  virtual void add(std::span<const int32_t> ids, std::span<const uint8_t> mask) = 0;
  // Every sequence added goes to train or, where is_eval[i] is 1, to eval, each set keeping the order of adding.
  virtual TrainEvalSets finish(const std::vector<uint8_t>& is_eval) = 0;
};

class MemorySink : public SequenceSink {
 public:
  void add(std::span<const int32_t> ids, std::span<const uint8_t> mask) override { all_.add(ids, mask); }
  TrainEvalSets finish(const std::vector<uint8_t>& is_eval) override;

 private:
  SequenceSetBuilder all_;
};

}  // namespace qsft
