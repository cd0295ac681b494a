// The per-row softmax + cross-entropy passes a benchmark compares (bench/gpu_ce_bench.cpp), each with the production
// launcher's signature (cuda::softmax_ce_rows in kernels/cross_entropy_cuda.h).
#pragma once
#include <vector>

#include "kernels/cross_entropy_cuda.h"

namespace qsft::dev {

struct SoftmaxCeVariant {
  const char* name;
  void (*rows)(const cuda::SoftmaxCeRows&, void* stream);
  int row_reads;  // reads of each row of logits with the gradient (for the bench's bytes moved)
};

// 01_three_pass.cu: the kernel before the online pass (max, then sum, then gradient: three reads of each row,
// elements one at a time), kept to measure the change; deleted once bench/RESULTS.md has the numbers.
void softmax_ce_rows_dev01(const cuda::SoftmaxCeRows& a, void* stream);
// 02_rows_in_l2.cu: the production kernel on one (or two) blocks per SM looping over rows, so that fewer rows are
// in flight and the gradient pass may read them from L2.
void softmax_ce_rows_dev02_1(const cuda::SoftmaxCeRows& a, void* stream);
void softmax_ce_rows_dev02_2(const cuda::SoftmaxCeRows& a, void* stream);

inline std::vector<SoftmaxCeVariant> softmax_ce_variants() {
  return {
      {"online, 16-byte (production)", cuda::softmax_ce_rows, 2},
      {"01 three-pass, scalar", softmax_ce_rows_dev01, 3},
      {"02 1 block/SM (L2 reuse)", softmax_ce_rows_dev02_1, 2},
      {"02 2 blocks/SM (L2 reuse)", softmax_ce_rows_dev02_2, 2},
  };
}

}  // namespace qsft::dev
