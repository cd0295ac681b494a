#include "kernels/kernel_util_cuda.h"
#include "kernels/reduce.h"
#include "kernels/reduce_cuda.h"
#include "kernels/runtime_cuda.h"

namespace qsft::cuda {
namespace {

constexpr int kBlockThreads = 256;
constexpr int kFinalThreads = 1024;

int64_t num_blocks(int64_t n) { return (n + cpu::kReduceBlock - 1) / cpu::kReduceBlock; }

constexpr int kChunksPerBlock = kBlockThreads / 32;  // one warp per chunk

// partial[c] = sum of x^2 over chunk c, elements [c * kReduceBlock, (c + 1) * kReduceBlock), in double, by one
// warp: lane l takes the W-element steps l, l + 32, ... (16-byte vectors when x is aligned; kReduceBlock is a
// multiple of every 32 W), then a fixed shuffle tree. No block barrier or shared memory, and 8 independent 16-byte
// loads per lane in flight (a 256-thread block per 4096-element chunk with its two barriers made sum_squares 54%
// of the copy bandwidth).
template <int W, class T>
__global__ void __launch_bounds__(kBlockThreads) chunk_sum_squares_kernel(const T* x, int64_t n, double* partial) {
  const int64_t c = int64_t(blockIdx.x) * kChunksPerBlock + threadIdx.x / 32, begin = c * cpu::kReduceBlock;
  if (begin >= n) return;  // the whole warp: c is the warp's
  const int lane = threadIdx.x & 31;
  const T* xc = x + begin;
  const int64_t len = min(n - begin, cpu::kReduceBlock), body = len / (32 * W) * (32 * W);
  double s = 0.0;
#pragma unroll 8
  for (int64_t j = int64_t(lane) * W; j < body; j += 32 * W) {
    float a[W];
    load_n<W>(xc + j, a);
#pragma unroll
    for (int k = 0; k < W; ++k) s += double(a[k]) * a[k];
  }
  for (int64_t j = body + lane; j < len; j += 32) {  // the last chunk's ragged end
    const float a = load(xc + j);
    s += double(a) * a;
  }
  s = warp_sum(s);
  if (lane == 0) partial[c] = s;
}

// out[0] = sum of partial[0 .. blocks), fixed order (and, when given, out_f32[0] = that sum rounded to fp32).
__global__ void __launch_bounds__(kFinalThreads)
    final_sum_kernel(const double* partial, int64_t blocks, double* out, float* out_f32) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < blocks; i += blockDim.x) s += partial[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) {
    out[0] = s;
    if (out_f32) out_f32[0] = float(s);
  }
}

// The two passes; the sum is left in scratch[blocks] (and in *out_f32 when given), on the device.
void launch_sum_squares(DType dt, const void* x, int64_t n, void* scratch, float* out_f32, void* stream) {
  const int64_t blocks = num_blocks(n);
  double* partial = static_cast<double*>(scratch);
  dispatch_float(dt, "sum_squares", [&](auto tag) {
    using E = decltype(tag);
    launch_vec_or_scalar<kVec<E>>(aligned16(x), [&](auto w) {
      chunk_sum_squares_kernel<decltype(w)::value, E>
          <<<unsigned((blocks + kChunksPerBlock - 1) / kChunksPerBlock), kBlockThreads, 0, as_stream(stream)>>>(
              static_cast<const E*>(x), n, partial);
    });
  });
  QSFT_CUDA_CHECK_LAUNCH();
  final_sum_kernel<<<1, kFinalThreads, 0, as_stream(stream)>>>(partial, blocks, partial + blocks, out_f32);
  QSFT_CUDA_CHECK_LAUNCH();
}

// dst[e] (+)= scale * (partial[0, e] + ... + partial[ranges - 1, e]): added to an F32 dst, or stored as bf16 at
// row e / cols, column e % cols of a dst with row stride ld.
template <bool kAdd, class T>
__global__ void partial_sums_kernel(const float* partial, int ranges, int64_t count, float scale, T* dst, int64_t cols,
                                    int64_t ld) {
  QSFT_GRID_STRIDE(e, count) {
    float sum = 0.0f;
    for (int k = 0; k < ranges; ++k) sum += partial[int64_t(k) * count + e];
    if constexpr (kAdd)
      dst[e] += scale * sum;
    else
      dst[(e / cols) * ld + e % cols] = __float2bfloat16_rn(scale * sum);
  }
}

}  // namespace

size_t sum_squares_scratch_bytes(int64_t n) { return size_t(num_blocks(n) + 1) * sizeof(double); }

double sum_squares(DType dt, const void* x, int64_t n, void* scratch, void* stream) {
  if (n == 0) return 0.0;
  launch_sum_squares(dt, x, n, scratch, nullptr, stream);
  double result = 0.0;
  copy_d2h(&result, static_cast<double*>(scratch) + num_blocks(n), sizeof result, stream);
  return result;
}

void sum_squares_to(DType dt, const void* x, int64_t n, void* scratch, float* out, void* stream) {
  if (n == 0) {
    fill_zero(out, sizeof(float), stream);
    return;
  }
  launch_sum_squares(dt, x, n, scratch, out, stream);
}

void add_partial_sums(const float* partial, int ranges, int64_t count, float scale, float* dst, void* stream) {
  if (count == 0) return;
  partial_sums_kernel<true>
      <<<grid_for(count), kThreads, 0, as_stream(stream)>>>(partial, ranges, count, scale, dst, count, count);
  QSFT_CUDA_CHECK_LAUNCH();
}

void store_partial_sums(const float* partial, int ranges, int64_t rows, int64_t cols, float scale, void* dst,
                        int64_t ld, void* stream) {
  if (rows * cols == 0) return;
  partial_sums_kernel<false><<<grid_for(rows * cols), kThreads, 0, as_stream(stream)>>>(
      partial, ranges, rows * cols, scale, static_cast<bf16*>(dst), cols, ld);
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
