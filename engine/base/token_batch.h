// The packed micro-batch as the model reads it: host arrays owned by the caller (data/'s PackedBatch converts to
// it), so that engine/model depends on no data/ type. Several sequences laid end to end in one row (padding-free):
// each keeps its own positions (restarting at 0) and attention boundary (cu_seqlens); targets[t] is the token the
// model must predict at t, or -100 when t has no trained target.
#pragma once
#include <cstdint>
#include <span>

namespace qsft {

struct TokenBatchView {
  std::span<const int32_t> ids;         // [T]
  std::span<const int32_t> targets;     // [T]  next-token target or -100
  std::span<const int32_t> positions;   // [T]  position within its own sequence
  std::span<const int32_t> cu_seqlens;  // [S+1] sequence offsets, cu_seqlens[S] == T
  int max_seqlen = 0;                   // longest sequence
  int64_t num_targets = 0;              // tokens with a trained target

  int64_t num_tokens() const { return int64_t(ids.size()); }
  int num_seqs() const { return int(cu_seqlens.size()) - 1; }
};

}  // namespace qsft
