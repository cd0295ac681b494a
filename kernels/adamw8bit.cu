#include "kernels/adamw8bit_cuda.h"
#include "kernels/adamw8bit_math.h"
#include "kernels/kernel_util_cuda.h"

namespace qsft::cuda {
namespace {

constexpr int kBlock = int(cpu::kAdamW8bitBlock);

// One thread block per block of 256 parameters, one thread per parameter. Lanes past n play the kernel's padding
// (g 0, codes 128 and 0) in the absmax, as the CPU reference does. The max is exact in any order.
__global__ void adamw8bit_kernel(float* p, const float* g, cpu::AdamW8bitState s, int64_t n, cpu::AdamW8bitScalars k) {
  __shared__ float map_m[kBlock], map_v[kBlock], max_m[kBlock], max_v[kBlock];
  const int t = threadIdx.x;
  const int64_t b = blockIdx.x, i = b * kBlock + t;
  const bool in = i < n;
  map_m[t] = s.map_m[t];
  map_v[t] = s.map_v[t];
  __syncthreads();
  const float gi = in ? g[i] : 0.0f;
  const adamw8bit::Moments mo =
      adamw8bit::update_moments(gi, map_m[in ? s.m[i] : 128], s.absmax_m[b], map_v[in ? s.v[i] : 0], s.absmax_v[b], k);
  max_m[t] = adamw8bit::absf(mo.s1);
  max_v[t] = adamw8bit::absf(mo.s2);
  __syncthreads();
  for (int half = kBlock / 2; half > 0; half >>= 1) {
    if (t < half) {
      max_m[t] = adamw8bit::maxf(max_m[t], max_m[t + half]);
      max_v[t] = adamw8bit::maxf(max_v[t], max_v[t + half]);
    }
    __syncthreads();
  }
  const float am = max_m[0], av = max_v[0];  // every thread read the old absmax before the first barrier
  if (t == 0) {
    s.absmax_m[b] = am;
    s.absmax_v[b] = av;
  }
  if (!in) return;
  p[i] = adamw8bit::update_param(p[i], gi, mo, k, i);
  s.m[i] = adamw8bit::quantize_m(map_m, mo.s1, am);
  s.v[i] = adamw8bit::quantize(map_v, adamw8bit::div(mo.s2, av), false);
}

}  // namespace

void adamw8bit_step(float* p, const float* g, const cpu::AdamW8bitState& s, int64_t n, const cpu::AdamWHyper& h,
                    int64_t decayed, void* stream) {
  if (n == 0) return;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  adamw8bit_kernel<<<unsigned(blocks), kBlock, 0, as_stream(stream)>>>(p, g, s, n, cpu::adamw8bit_scalars(h, decayed));
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
