// The attention implementations a benchmark compares (bench/gpu_attention_bench.cpp), each with the production
// launchers' signatures (kernels/attention_cuda.h). Today the production ones: WMMA, and mma.sync with the Large
// and Small tile configurations. A new variant is a kernels/dev/attention/NN_description.cu defining its two
// launchers (see kernels/dev/README.md), declared and listed here.
#pragma once
#include <vector>

#include "kernels/attention_cuda.h"

namespace qsft::dev {

struct AttentionVariant {
  const char* name;
  void (*fwd)(const cuda::AttentionShape&, const void* q, const void* k, const void* v, void* out, float* lse,
              void* stream);
  void (*bwd)(const cuda::AttentionShape&, const void* dout, const void* q, const void* k, const void* v,
              const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream);
  bool (*supports)(int64_t D);
};

inline std::vector<AttentionVariant> attention_variants() {
  using cuda::AttentionShape;
  using cuda::AttentionTiles;
  return {
      {"mma large (production)",
       [](const AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse, void* st) {
         cuda::attention_fwd_mma(s, q, k, v, out, lse, st, AttentionTiles::Large);
       },
       [](const AttentionShape& s, const void* dout, const void* q, const void* k, const void* v, const void* out,
          const float* lse, void* dq, void* dk, void* dv, void* scratch, void* st) {
         cuda::attention_bwd_mma(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, st, AttentionTiles::Large);
       },
       cuda::attention_mma_supports_head_dim},
      {"mma small (99 KiB GPUs)",
       [](const AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse, void* st) {
         cuda::attention_fwd_mma(s, q, k, v, out, lse, st, AttentionTiles::Small);
       },
       [](const AttentionShape& s, const void* dout, const void* q, const void* k, const void* v, const void* out,
          const float* lse, void* dq, void* dk, void* dv, void* scratch, void* st) {
         cuda::attention_bwd_mma(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, st, AttentionTiles::Small);
       },
       cuda::attention_mma_supports_head_dim},
      {"wmma (QSFT_ATTENTION=wmma)", cuda::attention_fwd_wmma, cuda::attention_bwd_wmma,
       cuda::attention_supports_head_dim},
  };
}

}  // namespace qsft::dev
