// The per-row softmax + cross-entropy passes a benchmark compares (bench/gpu_ops_bench.cpp), each with the
// production launcher's signature (cuda::softmax_ce_rows in kernels/cross_entropy_cuda.h).
#pragma once
#include <vector>

#include "kernels/cross_entropy_cuda.h"

namespace qsft::dev {

struct SoftmaxCeVariant {
  const char* name;
  void (*rows)(const cuda::SoftmaxCeRows&, void* stream);
  int row_reads;                          // reads of each row of logits with the gradient (the bytes moved)
  bool (*supports)(DType dt, int64_t V);  // on this device, rows of V elements; nullptr: always
};

// 03_cluster_smem_sm90a.cu: each row held in the shared memory of a thread-block cluster (compute capability 9.0),
// read from DRAM once: clusters of 4 blocks of 512 threads (76 KB slices at V = 152064 bf16, 2 blocks per SM) or of
// 8 blocks of 256 (38 KB, 4 per SM).
bool softmax_ce_rows_dev03_4_supports(DType dt, int64_t V);
bool softmax_ce_rows_dev03_8_supports(DType dt, int64_t V);
void softmax_ce_rows_dev03_4(const cuda::SoftmaxCeRows& a, void* stream);
void softmax_ce_rows_dev03_8(const cuda::SoftmaxCeRows& a, void* stream);

inline std::vector<SoftmaxCeVariant> softmax_ce_variants() {
  return {
      {"online, 16-byte (production)", cuda::softmax_ce_rows, 2, nullptr},
      {"03 cluster of 4, row in smem", softmax_ce_rows_dev03_4, 1, softmax_ce_rows_dev03_4_supports},
      {"03 cluster of 8, row in smem", softmax_ce_rows_dev03_8, 1, softmax_ce_rows_dev03_8_supports},
  };
}

}  // namespace qsft::dev
