#include <algorithm>
#include <vector>

#include "kernels/kernel_util_cuda.h"
#include "kernels/weight_grad_cuda.h"

namespace qsft::cuda {
namespace {

constexpr int kCols = 32;  // columns per block (one warp wide: coalesced rows)
constexpr int kRows = 16;  // row lanes per block: lane y sums rows y, y + kRows, ... in order

// out[j] += sum_t term(t, j) over T rows for kCols columns per block: kRows partial sums per column, each over its
// rows in order, then added in lane order (a fixed order: deterministic).
template <class Term>
__device__ void column_sums(int64_t T, int64_t N, float* out, Term term) {
  __shared__ float partial[kRows][kCols + 1];
  const int64_t j = int64_t(blockIdx.x) * kCols + threadIdx.x;
  float sum = 0.0f;
  if (j < N)
    for (int64_t t = threadIdx.y; t < T; t += kRows) sum += term(t, j);
  partial[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y != 0 || j >= N) return;
  float total = 0.0f;
  for (int y = 0; y < kRows; ++y) total += partial[y][threadIdx.x];
  out[j] += total;
}

template <class T>
__global__ void bias_grad_kernel(const T* dy, int64_t rows, int64_t N, int64_t ld, float* db) {
  column_sums(rows, N, db, [&](int64_t t, int64_t j) { return load(dy + t * ld + j); });
}

template <class T>
__global__ void rmsnorm_wgrad_kernel(const T* dy, NormRows dyl, const T* x, NormRows xl, const float* rstd,
                                     int64_t rows, int64_t H, float* dw) {
  column_sums(rows, H, dw, [&](int64_t t, int64_t j) {
    return load(dy + dyl.at(t, H) + j) * (load(x + xl.at(t, H) + j) * rstd[t]);
  });
}

// One block per group of tokens with the same id: order[starts[g] .. starts[g + 1]) are its tokens in token order.
template <class T>
__global__ void embedding_bwd_kernel(const int32_t* order, const int32_t* starts, const int32_t* ids, const T* dout,
                                     int64_t H, float* dtable) {
  const int32_t first = starts[blockIdx.x], end = starts[blockIdx.x + 1];
  float* row = dtable + int64_t(ids[order[first]]) * H;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
    float sum = 0.0f;
    for (int32_t i = first; i < end; ++i) sum += load(dout + int64_t(order[i]) * H + j);
    row[j] += sum;
  }
}

dim3 column_grid(int64_t N) { return dim3(unsigned((N + kCols - 1) / kCols)); }

}  // namespace

void bias_grad(DType dt, const void* dy, int64_t T, int64_t N, int64_t ld, float* db, void* stream) {
  if (T == 0 || N == 0) return;
  dispatch_float(dt, "bias_grad", [&](auto tag) {
    using E = decltype(tag);
    bias_grad_kernel<E>
        <<<column_grid(N), dim3(kCols, kRows), 0, as_stream(stream)>>>(static_cast<const E*>(dy), T, N, ld, db);
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

void rmsnorm_wgrad(DType dt, const void* dy, NormRows dyl, const void* x, NormRows xl, const float* rstd, int64_t T,
                   int64_t H, float* dw, void* stream) {
  if (T == 0 || H == 0) return;
  dispatch_float(dt, "rmsnorm_wgrad", [&](auto tag) {
    using E = decltype(tag);
    rmsnorm_wgrad_kernel<E><<<column_grid(H), dim3(kCols, kRows), 0, as_stream(stream)>>>(
        static_cast<const E*>(dy), dyl, static_cast<const E*>(x), xl, rstd, T, H, dw);
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

// Scratch: order [T], starts [groups + 1 <= T + 1], ids [T], all I32.
size_t embedding_bwd_scratch_bytes(int64_t T) { return size_t(3 * T + 1) * sizeof(int32_t); }

void embedding_bwd(DType dt, const int32_t* host_ids, const void* dout, int64_t T, int64_t H, float* dtable,
                   void* scratch, void* stream) {
  if (T == 0 || H == 0) return;
  // The grouping, as the CPU op makes it: token indices stably sorted by id, and where each id's group starts.
  std::vector<int32_t> host(size_t(3 * T + 1));
  int32_t* order = host.data();
  for (int64_t t = 0; t < T; ++t) order[t] = int32_t(t);
  std::stable_sort(order, order + T, [&](int32_t a, int32_t b) { return host_ids[a] < host_ids[b]; });
  int32_t* starts = order + T;
  int64_t groups = 0;
  for (int64_t i = 0; i < T; ++i)
    if (i == 0 || host_ids[order[i]] != host_ids[order[i - 1]]) starts[groups++] = int32_t(i);
  starts[groups] = int32_t(T);
  int32_t* ids = starts + groups + 1;
  std::copy_n(host_ids, T, ids);
  const size_t used = size_t(T + groups + 1 + T) * sizeof(int32_t);
  QSFT_CUDA_CHECK(cudaMemcpyAsync(scratch, host.data(), used, cudaMemcpyHostToDevice, as_stream(stream)));
  const int32_t* d_order = static_cast<const int32_t*>(scratch);
  const int32_t* d_starts = d_order + T;
  const int32_t* d_ids = d_starts + groups + 1;
  dispatch_float(dt, "embedding_bwd", [&](auto tag) {
    using E = decltype(tag);
    embedding_bwd_kernel<E><<<unsigned(groups), kThreads, 0, as_stream(stream)>>>(
        d_order, d_starts, d_ids, static_cast<const E*>(dout), H, dtable);
  });
  QSFT_CUDA_CHECK_LAUNCH();
  // cudaMemcpyAsync from pageable memory has copied `host` out before it returns: freeing it here is safe.
}

}  // namespace qsft::cuda
