// The attention implementations a benchmark compares (bench/gpu_attention_bench.cpp), each with the production
// launchers' signatures (kernels/attention_cuda.h): the production ones (mma.sync with the Large and Small tile
// configurations, WMMA) and the numbered variants of this folder (kernels/dev/README.md), each declared and
// listed here; a variant that changes only one pass uses the production launcher for the other.
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

// 01_fwd_4warps_32rows.cu: forward with 4 warps x 32 query rows (FA2's layout).
void attention_fwd_dev01(const cuda::AttentionShape& s, const void* q, const void* k, const void* v, void* out,
                         float* lse, void* stream);

// The scratch passed to bwd must hold attention_bwd_scratch_bytes(s, AttentionBwdMode::AtomicDq).
inline std::vector<AttentionVariant> attention_variants() {
  using cuda::AttentionBwdMode;
  using cuda::AttentionShape;
  using cuda::AttentionTiles;
  return {
      {"mma large (production)",
       [](const AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse, void* st) {
         cuda::attention_fwd_mma(s, q, k, v, out, lse, st, AttentionTiles::Large);
       },
       [](const AttentionShape& s, const void* dout, const void* q, const void* k, const void* v, const void* out,
          const float* lse, void* dq, void* dk, void* dv, void* scratch, void* st) {
         cuda::attention_bwd_mma(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, st, AttentionTiles::Large,
                                 AttentionBwdMode::Deterministic);
       },
       cuda::attention_mma_supports_head_dim},
      {"mma large, atomic dQ bwd",
       [](const AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse, void* st) {
         cuda::attention_fwd_mma(s, q, k, v, out, lse, st, AttentionTiles::Large);
       },
       [](const AttentionShape& s, const void* dout, const void* q, const void* k, const void* v, const void* out,
          const float* lse, void* dq, void* dk, void* dv, void* scratch, void* st) {
         cuda::attention_bwd_mma(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, st, AttentionTiles::Large,
                                 AttentionBwdMode::AtomicDq);
       },
       cuda::attention_mma_supports_head_dim},
      {"mma small (99 KiB GPUs)",
       [](const AttentionShape& s, const void* q, const void* k, const void* v, void* out, float* lse, void* st) {
         cuda::attention_fwd_mma(s, q, k, v, out, lse, st, AttentionTiles::Small);
       },
       [](const AttentionShape& s, const void* dout, const void* q, const void* k, const void* v, const void* out,
          const float* lse, void* dq, void* dk, void* dv, void* scratch, void* st) {
         cuda::attention_bwd_mma(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, st, AttentionTiles::Small,
                                 AttentionBwdMode::Deterministic);
       },
       cuda::attention_mma_supports_head_dim},
      {"01 fwd 4 warps x 32 rows", attention_fwd_dev01,
       [](const AttentionShape& s, const void* dout, const void* q, const void* k, const void* v, const void* out,
          const float* lse, void* dq, void* dk, void* dv, void* scratch, void* st) {
         cuda::attention_bwd_mma(s, dout, q, k, v, out, lse, dq, dk, dv, scratch, st, AttentionTiles::Large,
                                 AttentionBwdMode::Deterministic);
       },
       cuda::attention_mma_supports_head_dim},
      {"wmma (QSFT_ATTENTION=wmma)", cuda::attention_fwd_wmma, cuda::attention_bwd_wmma,
       cuda::attention_supports_head_dim},
  };
}

}  // namespace qsft::dev
