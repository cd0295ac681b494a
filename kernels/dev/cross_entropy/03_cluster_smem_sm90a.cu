// Variant 03 of the cross-entropy row pass: one DRAM read of each row instead of two.
// The production kernel reads a row for its statistics and again for the gradient: a V = 152064 bf16 row is
// 304 KB and ~530 rows are in flight (one block of 512 threads per row, 4 per SM), far beyond the 50 MB L2, so the
// gradient pass reads the row from DRAM again: 3 row sizes of traffic (two reads, one write) where 2 are needed.
// In the first two GPU runs it moved 3173 GB/s of those 3 (74.5% of the copy ceiling); at the same rate over 2 row
// sizes it would take 2/3 of the time. Variant 02 (fewer blocks, hoping the second read hits L2) lost: 47-62%.
//
// Here a thread-block cluster of CL blocks (one per SM) holds the row in shared memory, each block a slice of
// ceil(V / CL) elements (76 KB at CL = 4, 512 threads, 2 blocks per SM; 38 KB at CL = 8, 256 threads, 4 per SM),
// so that one block's loads overlap another's stores:
//   1. each block loads its slice once into shared memory (4 16-byte loads per thread in flight), keeping the
//      production kernel's online statistics (max, first argmax, sum exp(l - max)), merged over the block;
//   2. thread 0 stores the block's statistics into slot `rank` of every block's shared memory (distributed shared
//      memory); one cluster barrier; each block merges the CL slots in rank order (all get the same statistics),
//      with no remote access after the barrier, so no second one;
//   3. each block writes its slice's gradient from shared memory.
// Thread-block clusters need compute capability 9.0: compiled for sm_90a alone (kernels/CMakeLists.txt); the
// launcher refuses other devices and softmax_ce_rows_dev03_supports() says whether a cluster size takes V.
#include <cooperative_groups.h>

#include <stdexcept>

#include "kernels/dev/cross_entropy/variants.h"
#include "kernels/kernel_util_cuda.h"
#include "kernels/online_softmax_cuda.h"

namespace qsft::dev {
namespace {

namespace cg = cooperative_groups;
using namespace cuda;

constexpr int64_t kMaxSliceBytes = 100 * 1024;  // two blocks per SM fit in the 228 KB of shared memory
constexpr int kLoads = 4;                       // 16-byte loads per thread in flight

// The slice of a row each of `blocks` blocks holds: ceil(V / blocks) elements rounded up to whole 16-byte words;
// 0 when that exceeds kMaxSliceBytes.
int64_t slice_elems(int64_t V, size_t elem_bytes, int blocks) {
  const int64_t w = int64_t(16 / elem_bytes), slice = ((V + blocks - 1) / blocks + w - 1) / w * w;
  return slice * int64_t(elem_bytes) <= kMaxSliceBytes ? slice : 0;
}

// Row blockIdx.x / CL of the chunk; this block holds elements [rank slice, (rank + 1) slice) of it (fewer, or
// none, at the row's end). Rows are 16-byte aligned and V a multiple of the word's W elements.
template <int CL, int Threads, class T>
__global__ void __launch_bounds__(Threads, 1024 / Threads)
    softmax_ce_cluster_kernel(T* logits, int64_t V, int64_t slice, const int32_t* targets, const int32_t* idx,
                              float grad_scale, bool want_grad, float* row_loss, int32_t* row_correct) {
  constexpr int W = kVec<T>;
  extern __shared__ uint4 held[];  // [slice / W] this block's slice, as loaded
  __shared__ OnlineSoftmax scratch[Threads / 32];
  __shared__ OnlineSoftmax slot[CL];  // slot[b]: block b's statistics, stored there by block b
  const cg::cluster_group cluster = cg::this_cluster();
  const unsigned rank = cluster.block_rank();
  const int64_t r = blockIdx.x / CL, begin = min(V, int64_t(rank) * slice), len = min(V - begin, slice);
  T* part = logits + r * V + begin;
  const int32_t target = targets[idx[r]];
  float target_logit = 0.0f;
  if (rank == 0 && threadIdx.x == 0) target_logit = load(logits + r * V + target);  // before any block writes

  OnlineSoftmax st;
  block_stride_batched<W, kLoads>(part, len, [&](const float(&l)[W], int64_t j) {
    held[j / W] = pack_word<T>(l);  // the loaded bits again: T -> fp32 -> T is exact
    online_add(st, l, begin + j);
  });
  st = block_merge(st, scratch);
  if (threadIdx.x == 0)
    for (int b = 0; b < CL; ++b) *cluster.map_shared_rank(&slot[rank], b) = st;
  cluster.sync();  // every slot of every block is written
  OnlineSoftmax row;
#pragma unroll
  for (int b = 0; b < CL; ++b) row = merge(row, slot[b]);
  if (rank == 0 && threadIdx.x == 0) {
    row_loss[r] = row.m + logf(row.s) - target_logit;
    row_correct[r] = row.i == target;
  }
  if (!want_grad) return;
  const float scale = grad_scale / row.s;
  uint4* dst = reinterpret_cast<uint4*>(part);
#pragma unroll 4
  for (int64_t w = threadIdx.x; w < len / W; w += Threads) {
    float l[W];
    unpack_word<T>(held[w], l);
    softmax_ce_grad(l, row, scale, grad_scale, begin + w * W, target);
    dst[w] = pack_word<T>(l);
  }
}

bool is_sm90() {
  int dev = 0, major = 0, minor = 0;
  QSFT_CUDA_CHECK(cudaGetDevice(&dev));
  QSFT_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  QSFT_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  return major == 9 && minor == 0;
}

template <int CL, int Threads, class T>
void launch(const cuda::SoftmaxCeRows& a, void* stream) {
  const int64_t slice = slice_elems(a.V, sizeof(T), CL);
  if (!is_sm90() || slice == 0 || !aligned16(a.logits) || (a.V * int64_t(sizeof(T))) % 16 != 0)
    throw std::invalid_argument(
        "softmax_ce_rows_dev03: needs compute capability 9.0 and 16-byte aligned rows of at "
        "most " +
        std::to_string(CL) + " x 100 KB (V = " + std::to_string(a.V) + ")");
  const auto kernel = softmax_ce_cluster_kernel<CL, Threads, T>;
  const size_t smem = size_t(slice) * sizeof(T);
  QSFT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  cudaLaunchAttribute cluster{};
  cluster.id = cudaLaunchAttributeClusterDimension;
  cluster.val.clusterDim.x = CL;
  cluster.val.clusterDim.y = 1;
  cluster.val.clusterDim.z = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(unsigned(a.rows * CL));
  cfg.blockDim = dim3(Threads);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = as_stream(stream);
  cfg.attrs = &cluster;
  cfg.numAttrs = 1;
  QSFT_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, static_cast<T*>(a.logits), a.V, slice, a.targets, a.idx,
                                     a.grad_scale, a.want_grad, a.row_loss, a.row_correct));
  QSFT_CUDA_CHECK_LAUNCH();
}

template <int CL, int Threads>
void rows_in_clusters(const cuda::SoftmaxCeRows& a, void* stream) {
  if (a.rows == 0) return;
  dispatch_float(a.dt, "softmax_ce_rows_dev03", [&](auto tag) { launch<CL, Threads, decltype(tag)>(a, stream); });
}

template <int CL>
bool supports(DType dt, int64_t V) {
  if (dt != DType::F32 && dt != DType::BF16) return false;
  const size_t elem = dtype_size(dt);
  return is_sm90() && (V * int64_t(elem)) % 16 == 0 && slice_elems(V, elem, CL) > 0;
}

}  // namespace

bool softmax_ce_rows_dev03_4_supports(DType dt, int64_t V) { return supports<4>(dt, V); }
bool softmax_ce_rows_dev03_8_supports(DType dt, int64_t V) { return supports<8>(dt, V); }
void softmax_ce_rows_dev03_4(const cuda::SoftmaxCeRows& a, void* stream) { rows_in_clusters<4, 512>(a, stream); }
void softmax_ce_rows_dev03_8(const cuda::SoftmaxCeRows& a, void* stream) { rows_in_clusters<8, 256>(a, stream); }

}  // namespace qsft::dev
