// A packed micro-batch: several token sequences laid end to end in one row (padding-free). Each sequence keeps its
// own positions (restarting at 0) and attention boundary (cu_seqlens). targets[t] is the token the model must
// predict at t (the next token of the same sequence when it is trained), or -100 when t has no trained target.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "engine/base/token_batch.h"

namespace qsft {

constexpr int32_t kIgnoreTarget = -100;

struct PackedBatch {
  std::vector<int32_t> ids;         // [T]
  std::vector<int32_t> targets;     // [T]  next-token target or kIgnoreTarget
  std::vector<int32_t> positions;   // [T]  position within its own sequence
  std::vector<int32_t> cu_seqlens;  // [S+1] sequence offsets, cu_seqlens[S] == T
  int max_seqlen = 0;

  int64_t num_tokens() const { return int64_t(ids.size()); }
  int num_seqs() const { return int(cu_seqlens.size()) - 1; }
  int64_t num_targets() const;  // tokens with a trained target

  // Appends one sequence: ids and its trained mask (mask[t] = 1 when token t is a trained output token). Token t
  // gets target ids[t+1] when mask[t+1] is set; the last token of the sequence gets none.
  void append(std::span<const int32_t> seq_ids, std::span<const uint8_t> mask);
  // Appends a sequence whose per-token targets are already known (targets.size() == seq_ids.size()).
  void append_with_targets(std::span<const int32_t> seq_ids, std::span<const int32_t> seq_targets);
  // Sequences [s0, s1) as a batch of their own.
  PackedBatch slice(int s0, int s1) const;
  // The view the model reads (like std::string to std::string_view: valid while this batch lives).
  operator TokenBatchView() const { return {ids, targets, positions, cu_seqlens, max_seqlen, num_targets()}; }
};

}  // namespace qsft
