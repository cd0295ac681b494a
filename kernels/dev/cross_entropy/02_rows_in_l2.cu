// Variant 02 of the cross-entropy row pass: the production kernel with fewer blocks, each looping over rows.
// One block per row puts ~530 rows of 304 KB (V = 152064, bf16) in flight on an H200 (4 blocks of 512 threads per
// SM), far beyond the 50 MB L2, so the gradient pass reads every row from DRAM again. With one (or two) blocks per
// SM only 132 (264) rows are in flight, 40 (80) MB: the second read may come from L2, leaving one DRAM read and
// one write per row. Fewer threads in flight per SM may cost bandwidth instead; the bench decides.
#include <cuda_runtime.h>

#include "kernels/dev/cross_entropy/variants.h"
#include "kernels/kernel_util_cuda.h"

namespace qsft::dev {
namespace {

int64_t sm_count() {
  int dev = 0, n = 0;
  QSFT_CUDA_CHECK(cudaGetDevice(&dev));
  QSFT_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  return n;
}

void rows_with_blocks_per_sm(const cuda::SoftmaxCeRows& a, int64_t per_sm, void* stream) {
  cuda::SoftmaxCeRows b = a;
  b.grid = per_sm * sm_count();
  cuda::softmax_ce_rows(b, stream);
}

}  // namespace

void softmax_ce_rows_dev02_1(const cuda::SoftmaxCeRows& a, void* stream) { rows_with_blocks_per_sm(a, 1, stream); }
void softmax_ce_rows_dev02_2(const cuda::SoftmaxCeRows& a, void* stream) { rows_with_blocks_per_sm(a, 2, stream); }

}  // namespace qsft::dev
