#include "engine/model/rope_freqs.h"

#include "kernels/rope.h"

namespace qsft {

RopeTable rope_table(const Qwen2Config& cfg, int64_t /*seq_len*/) {
  return {cpu::rope_default_inv_freq(cfg.head_dim, cfg.rope_theta), 1.0f};
}

}  // namespace qsft
