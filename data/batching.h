// From a SequenceSet to the micro-batches of an epoch: sequences shuffled from (seed, epoch), packed best-fit
// decreasing into bins of max_length tokens, bins shuffled and grouped into micro-batches. A plan is sequence
// indices only, so (epoch, micro-batch index) is enough to resume exactly; make_batch builds the tensors' data.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "data/packed_batch.h"
#include "data/sequence_set.h"

namespace qsft {

using Bins = std::vector<std::vector<uint32_t>>;  // each bin: sequence indices, laid end to end

// Best-fit decreasing: sequences by length, longest first (ties in `order`'s order), each into the fullest bin
// it fits in, a new bin when none has room. A sequence longer than capacity: InputError.
Bins pack_best_fit_decreasing(const SequenceSet& set, std::span<const uint32_t> order, int64_t capacity);

// Tokens in bins / (bins * capacity).
double packing_efficiency(const SequenceSet& set, const Bins& bins, int64_t capacity);

// One epoch's micro-batches (sequence indices). A micro-batch is bins_per_micro_batch bins end to end, or, when
// micro_batch_tokens > 0, as many bins as fit in that many tokens (at least one). Without packing, every
// sequence is a bin of its own. The same arguments give the same plan.
std::vector<std::vector<uint32_t>> plan_epoch(const SequenceSet& set, int64_t max_length, int bins_per_micro_batch,
                                              int64_t micro_batch_tokens, uint64_t seed, int epoch,
                                              bool packing = true);

// The packed, padding-free batch of these sequences (PackedBatch::append: own positions and boundaries each).
PackedBatch make_batch(const SequenceSet& set, std::span<const uint32_t> indices);

}  // namespace qsft
