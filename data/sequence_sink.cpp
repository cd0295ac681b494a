#include "data/sequence_sink.h"

#include <algorithm>

namespace qsft {

TrainEvalSets MemorySink::finish(const std::vector<uint8_t>& is_eval) {
  SequenceSet all = all_.finish();
  if (std::ranges::find(is_eval, 1) == is_eval.end()) return {std::move(all), SequenceSet()};
  SequenceSetBuilder train, eval;
  for (size_t s = 0; s < all.size(); ++s) (is_eval[s] ? eval : train).add(all, s);
  return {train.finish(), eval.finish()};
}

}  // namespace qsft
