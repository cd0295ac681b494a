// The packed micro-batch on the backend's device: ids, targets and the sequence layout RoPE and attention read.
// Carved for the largest micro-batch before step one; upload() fills its first T rows.
#pragma once
#include "engine/arena.h"
#include "engine/base/token_batch.h"
#include "engine/ops.h"

namespace qsft {

class DeviceBatch {
 public:
  void carve(Arena& a, int64_t max_tokens);
  // Copies b to the device; token ids must lie in [0, vocab) (InputError otherwise: they come from the data).
  void upload(Ops& ops, const TokenBatchView& b, int64_t vocab);

  int64_t tokens() const { return T_; }
  int64_t num_targets() const { return num_targets_; }     // trained targets (counted on the host)
  Tensor ids() const { return ids_.rows(0, T_); }          // I32 [T]
  Tensor targets() const { return targets_.rows(0, T_); }  // I32 [T]
  const SeqLayout& layout() const { return seq_; }
  int max_seqlen() const { return seq_.max_seqlen; }

 private:
  int64_t max_tokens_ = 0, T_ = 0, num_targets_ = 0;
  Tensor ids_, targets_, positions_, cu_seqlens_;  // I32 [max], [max], [max], [max + 1]
  SeqLayout seq_;
};

}  // namespace qsft
