#include <algorithm>

#include "kernels/cross_entropy_cuda.h"
#include "kernels/embedding_cuda.h"
#include "kernels/kernel_util_cuda.h"
#include "kernels/runtime_cuda.h"

namespace qsft::cuda {
namespace {

constexpr int kScanThreads = 1024;
constexpr int kRowThreads = 1024;
constexpr size_t kLogitsBudget = size_t(256) << 20;  // bytes of one logits block

size_t round_up(size_t b) { return (b + 255) / 256 * 256; }

// Where each piece of the scratch lives (offsets in bytes).
struct CeScratch {
  size_t idx, count, row_loss, row_correct, h_chunk, logits, dh_chunk, total;
  explicit CeScratch(const LmHeadCe& a) {
    const int64_t C = std::min(lm_head_ce_chunk(a.V, a.dt), std::max<int64_t>(a.T, 1));
    const size_t es = dtype_size(a.dt);
    size_t off = 0;
    auto take = [&off](size_t bytes) {
      const size_t at = off;
      off += round_up(bytes);
      return at;
    };
    idx = take(size_t(a.T) * 4);
    count = take(4);
    row_loss = take(size_t(a.T) * 4);
    row_correct = take(size_t(a.T) * 4);
    h_chunk = take(size_t(C * a.H) * es);
    logits = take(size_t(C * a.V) * es);
    dh_chunk = take(size_t(C * a.H) * es);
    total = off;
  }
};

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

// (value, index) of the first maximum: ties go to the smaller index (torch.argmax).
struct ArgMax {
  float v;
  int64_t i;
};
__device__ __forceinline__ ArgMax better(ArgMax a, ArgMax b) {
  return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
}
__device__ ArgMax block_argmax(ArgMax m, float* vals, int64_t* idxs) {
  for (int o = 16; o > 0; o >>= 1)
    m = better(m, ArgMax{__shfl_xor_sync(0xffffffffu, m.v, o), __shfl_xor_sync(0xffffffffu, m.i, o)});
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) {
    vals[warp] = m.v;
    idxs[warp] = m.i;
  }
  __syncthreads();
  m = lane < int(blockDim.x >> 5) ? ArgMax{vals[lane], idxs[lane]} : ArgMax{-INFINITY, INT64_MAX};
  for (int o = 16; o > 0; o >>= 1)
    m = better(m, ArgMax{__shfl_xor_sync(0xffffffffu, m.v, o), __shfl_xor_sync(0xffffffffu, m.i, o)});
  return m;
}

// One block per trained row r of the chunk: logits [V] -> loss, hit, and (want_grad) the logits gradient in place:
//   e_j = exp(l_j - max), sum = sum_j e_j, loss = max + log(sum) - l_target, dl_j = grad_scale (e_j / sum - [j =
//   target])
template <class T>
__global__ void __launch_bounds__(kRowThreads)
    softmax_ce_kernel(T* logits, int64_t V, const int32_t* targets, const int32_t* idx, float grad_scale,
                      bool want_grad, float* row_loss, int32_t* row_correct) {
  __shared__ float fscratch[32];
  __shared__ int64_t iscratch[32];
  T* row = logits + int64_t(blockIdx.x) * V;
  const int32_t target = targets[idx[blockIdx.x]];
  ArgMax m{-INFINITY, INT64_MAX};
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) m = better(m, ArgMax{load(row + j), j});
  m = block_argmax(m, fscratch, iscratch);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) sum += expf(load(row + j) - m.v);
  sum = block_sum(sum, fscratch);
  const float target_logit = load(row + target);
  __syncthreads();  // every thread has read row[target] before the gradient overwrites it
  if (threadIdx.x == 0) {
    row_loss[blockIdx.x] = m.v + logf(sum) - target_logit;
    row_correct[blockIdx.x] = m.i == target;
  }
  if (!want_grad) return;
  const float scale = grad_scale / sum;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x)
    store(row + j, expf(load(row + j) - m.v) * scale - (j == target ? grad_scale : 0.0f));
}

// dh[idx[r], :] = dhc[r, :]
template <class E>
__global__ void scatter_rows_kernel(const E* dhc, const int32_t* idx, int64_t H, E* dh) {
  const E* src = dhc + int64_t(blockIdx.x) * H;
  E* dst = dh + int64_t(idx[blockIdx.x]) * H;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) dst[j] = src[j];
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

int64_t lm_head_ce_chunk(int64_t V, DType dt) {
  const int64_t fit = int64_t(kLogitsBudget / (size_t(V) * dtype_size(dt)));
  return std::clamp<int64_t>(fit / 64 * 64, 64, 8192);
}

size_t lm_head_ce_scratch_bytes(const LmHeadCe& a) { return CeScratch(a).total; }

void lm_head_ce(const LmHeadCe& a, GemmRunner& gemm, void* scratch, void* stream) {
  if (a.T == 0) return;
  const CeScratch at(a);
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
    dispatch_float(a.dt, "lm_head_ce", [&](auto tag) {
      using E = decltype(tag);
      softmax_ce_kernel<E><<<unsigned(rows), kRowThreads, 0, s>>>(static_cast<E*>(logits), a.V, a.targets, idx + c0,
                                                                  a.grad_scale, a.dh != nullptr, row_loss + c0,
                                                                  row_correct + c0);
      QSFT_CUDA_CHECK_LAUNCH();
      if (!a.dh) return;
      gemm.run({logits, a.dt, rows, a.V, a.V}, false, {W, a.dt, a.V, a.H, a.H}, false, {dh_chunk, a.dt, rows, a.H, a.H},
               1.0f, 0.0f, nullptr);  // dhc = dlogits W  [rows, H]
      scatter_rows_kernel<E>
          <<<unsigned(rows), 256, 0, s>>>(static_cast<const E*>(dh_chunk), idx + c0, a.H, static_cast<E*>(a.dh));
      QSFT_CUDA_CHECK_LAUNCH();
      if (a.dW)
        gemm.run({logits, a.dt, rows, a.V, a.V}, true, {h_chunk, a.dt, rows, a.H, a.H}, false,
                 {a.dW, DType::F32, a.V, a.H, a.H}, 1.0f, 1.0f, nullptr);  // dW += dlogits^T hc  [V, H]
    });
  }
  finish_kernel<<<1, kScanThreads, 0, s>>>(row_loss, row_correct, count_dev, a.loss_sum, a.correct);
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
