#include <algorithm>

#include "kernels/cross_entropy_cuda.h"
#include "kernels/embedding_cuda.h"
#include "kernels/kernel_util_cuda.h"
#include "kernels/online_softmax_cuda.h"
#include "kernels/runtime_cuda.h"

namespace qsft::cuda {
namespace {

constexpr int kScanThreads = 1024;
constexpr int kRowThreads = 512;
constexpr int kRowLoads = 4;  // per thread in flight in the row pass

// idx = { t : targets[t] >= 0 } in increasing t, count[0] = its size. One block: thread k owns a contiguous span
// of tokens, counts it, and an exclusive scan over the threads gives where its indices go.
__global__ void __launch_bounds__(kScanThreads)
    compact_targets_kernel(const int32_t* targets, int64_t T, int32_t* idx, int32_t* count) {
  __shared__ int32_t offsets[kScanThreads];
  const int64_t span = (T + kScanThreads - 1) / kScanThreads;
  const int64_t begin = min(T, int64_t(threadIdx.x) * span), end = min(T, begin + span);
  int32_t mine = 0;
  for (int64_t t = begin; t < end; ++t) mine += targets[t] >= 0;
  offsets[threadIdx.x] = mine;
  __syncthreads();
  for (int stride = 1; stride < kScanThreads; stride <<= 1) {  // Hillis-Steele inclusive scan
    const int32_t add = threadIdx.x >= stride ? offsets[threadIdx.x - stride] : 0;
    __syncthreads();
    offsets[threadIdx.x] += add;
    __syncthreads();
  }
  int32_t out = offsets[threadIdx.x] - mine;
  for (int64_t t = begin; t < end; ++t)
    if (targets[t] >= 0) idx[out++] = int32_t(t);
  if (threadIdx.x == kScanThreads - 1) count[0] = offsets[threadIdx.x];
}

// Row r of the chunk by one block, W elements per thread step (16-byte vectors, or 1 for rows that are not
// 16-byte aligned), kRowLoads steps' loads in flight per thread. Two passes over the row instead of three (max,
// sum, gradient):
//   read:         the thread's (max, first argmax, sum_j exp(l_j - max)) online, merged over the block
//   read + write: dl_j = grad_scale (exp(l_j - max) / sum - [j = target])            (want_grad only)
//   loss = max + log(sum) - l_target, hit = (argmax == target)
// (One load per thread in flight, 32 KB per SM, held it at 74.5% of the copy bandwidth in the second H200 run.)
template <int W, class T>
__device__ void softmax_ce_row(T* row, int64_t V, int32_t target, float grad_scale, bool want_grad, float* loss,
                               int32_t* hit, OnlineSoftmax* scratch) {
  const float target_logit = load(row + target);  // read before the block barrier, so before any overwrite
  OnlineSoftmax st;
  block_stride_batched<W, kRowLoads>(row, V, [&](const float(&l)[W], int64_t j) { online_add(st, l, j); });
  st = block_merge(st, scratch);
  if (threadIdx.x == 0) {
    *loss = st.m + logf(st.s) - target_logit;
    *hit = st.i == target;
  }
  if (!want_grad) return;
  const float scale = grad_scale / st.s;
  block_stride_batched<W, kRowLoads>(row, V, [&](float(&l)[W], int64_t j) {
    softmax_ce_grad(l, st, scale, grad_scale, j, target);
    store_n<W>(row + j, l);
  });
}

// Row blockIdx.x of the chunk by one block.
template <int W, class T>
__global__ void __launch_bounds__(kRowThreads)
    softmax_ce_kernel(T* logits, int64_t V, const int32_t* targets, const int32_t* idx, float grad_scale,
                      bool want_grad, float* row_loss, int32_t* row_correct) {
  __shared__ OnlineSoftmax scratch[kRowThreads / 32];
  const int64_t r = blockIdx.x;
  softmax_ce_row<W>(logits + r * V, V, targets[idx[r]], grad_scale, want_grad, row_loss + r, row_correct + r, scratch);
}

// dh[idx[r], :] = dhc[r, :] for r < rows, rows of `row_units` units of Unit (16-byte words when rows allow).
template <class Unit>
__global__ void scatter_rows_kernel(const Unit* dhc, const int32_t* idx, int64_t row_units, Unit* dh) {
  const Unit* src = dhc + int64_t(blockIdx.x) * row_units;
  Unit* dst = dh + int64_t(idx[blockIdx.x]) * row_units;
  for (int64_t j = threadIdx.x; j < row_units; j += blockDim.x) dst[j] = src[j];
}

void scatter_rows(DType dt, const void* dhc, const int32_t* idx, int64_t rows, int64_t H, void* dh, void* stream) {
  const size_t row_bytes = size_t(H) * dtype_size(dt);
  const cudaStream_t s = as_stream(stream);
  if (row_bytes % 16 == 0 && aligned16(dhc) && aligned16(dh))
    scatter_rows_kernel<uint4><<<unsigned(rows), 128, 0, s>>>(static_cast<const uint4*>(dhc), idx,
                                                              int64_t(row_bytes / 16), static_cast<uint4*>(dh));
  else if (dt == DType::F32)
    scatter_rows_kernel<float><<<unsigned(rows), 128, 0, s>>>(static_cast<const float*>(dhc), idx, H,
                                                              static_cast<float*>(dh));
  else
    scatter_rows_kernel<uint16_t><<<unsigned(rows), 128, 0, s>>>(static_cast<const uint16_t*>(dhc), idx, H,
                                                                 static_cast<uint16_t*>(dh));
  QSFT_CUDA_CHECK_LAUNCH();
}

// loss_sum[0] += sum of row_loss (double, fixed order), correct[0] += sum of row_correct.
__global__ void __launch_bounds__(kScanThreads) finish_kernel(const float* row_loss, const int32_t* row_correct,
                                                              const int32_t* count, float* loss_sum, int32_t* correct) {
  __shared__ double dscratch[32];
  __shared__ long long iscratch[32];
  double s = 0.0;
  long long c = 0;
  for (int64_t r = threadIdx.x; r < count[0]; r += blockDim.x) {
    s += row_loss[r];
    c += row_correct[r];
  }
  s = block_sum(s, dscratch);
  c = block_sum(c, iscratch);
  if (threadIdx.x == 0) {
    loss_sum[0] += float(s);
    correct[0] += int32_t(c);
  }
}

}  // namespace

size_t lm_head_ce_scratch_bytes(const LmHeadCe& a) { return CeScratch(a.T, a.H, a.V, a.dt).total; }

void softmax_ce_rows(const SoftmaxCeRows& a, void* stream) {
  if (a.rows == 0) return;
  dispatch_float(a.dt, "softmax_ce_rows", [&](auto tag) {
    using E = decltype(tag);
    const bool vec = aligned16(a.logits) && (a.V * int64_t(sizeof(E))) % 16 == 0;
    launch_vec_or_scalar<kVec<E>>(vec, [&](auto w) {
      softmax_ce_kernel<decltype(w)::value, E><<<unsigned(a.rows), kRowThreads, 0, as_stream(stream)>>>(
          static_cast<E*>(a.logits), a.V, a.targets, a.idx, a.grad_scale, a.want_grad, a.row_loss, a.row_correct);
    });
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

void lm_head_ce(const LmHeadCe& a, GemmRunner& gemm, void* scratch, void* stream) {
  if (a.T == 0) return;
  const CeScratch at(a.T, a.H, a.V, a.dt);
  char* base = static_cast<char*>(scratch);
  int32_t* idx = reinterpret_cast<int32_t*>(base + at.idx);
  int32_t* count_dev = reinterpret_cast<int32_t*>(base + at.count);
  float* row_loss = reinterpret_cast<float*>(base + at.row_loss);
  int32_t* row_correct = reinterpret_cast<int32_t*>(base + at.row_correct);
  void* h_chunk = base + at.h_chunk;
  void* logits = base + at.logits;
  void* dh_chunk = base + at.dh_chunk;
  const cudaStream_t s = as_stream(stream);

  compact_targets_kernel<<<1, kScanThreads, 0, s>>>(a.targets, a.T, idx, count_dev);
  QSFT_CUDA_CHECK_LAUNCH();
  int32_t count = 0;
  copy_d2h(&count, count_dev, 4, stream);
  if (a.dh) fill_zero(a.dh, size_t(a.T * a.H) * dtype_size(a.dt), stream);

  const int64_t C = std::min(lm_head_ce_chunk(a.V, a.dt), a.T);
  void* W = const_cast<void*>(a.W);
  for (int64_t c0 = 0; c0 < count; c0 += C) {
    const int64_t rows = std::min<int64_t>(C, count - c0);
    embedding_fwd(a.dt, idx + c0, a.h, rows, a.T, a.H, h_chunk, stream);
    gemm.run({h_chunk, a.dt, rows, a.H, a.H}, false, {W, a.dt, a.V, a.H, a.H}, true, {logits, a.dt, rows, a.V, a.V},
             1.0f, 0.0f, nullptr);  // logits = hc W^T  [rows, V]
    a.row_pass({a.dt, logits, rows, a.V, a.targets, idx + c0, a.grad_scale, a.dh != nullptr, row_loss + c0,
                row_correct + c0},
               stream);
    if (!a.dh) continue;
    gemm.run({logits, a.dt, rows, a.V, a.V}, false, {W, a.dt, a.V, a.H, a.H}, false, {dh_chunk, a.dt, rows, a.H, a.H},
             1.0f, 0.0f, nullptr);  // dhc = dlogits W  [rows, H]
    scatter_rows(a.dt, dh_chunk, idx + c0, rows, a.H, a.dh, stream);
    if (a.dW)
      gemm.run({logits, a.dt, rows, a.V, a.V}, true, {h_chunk, a.dt, rows, a.H, a.H}, false,
               {a.dW, DType::F32, a.V, a.H, a.H}, 1.0f, 1.0f, nullptr);  // dW += dlogits^T hc  [V, H]
  }
  finish_kernel<<<1, kScanThreads, 0, s>>>(row_loss, row_correct, count_dev, a.loss_sum, a.correct);
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
