#include <cmath>

#include "kernels/adamw_cuda.h"
#include "kernels/kernel_util_cuda.h"

namespace qsft::cuda {
namespace {

// The scalars of one step, rounded to fp32 once (as torch's Python floats meet fp32 tensors).
struct AdamWScalars {
  float decay, m_weight, beta2, v_weight, step_size, bc2_sqrt, eps;
};

// The explicitly rounded intrinsics keep nvcc from contracting a * b + c into an fma, so every operation rounds
// as in the CPU op (sqrtf and / are IEEE-exact by default): the same inputs give the same bits.
__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub(float a, float b) { return __fsub_rn(a, b); }

__device__ __forceinline__ float torch_lerp(float self, float end, float w) {
  return fabsf(w) < 0.5f ? add(self, mul(w, sub(end, self))) : sub(end, mul(sub(end, self), sub(1.0f, w)));
}

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, AdamWScalars s) {
  QSFT_GRID_STRIDE(i, n) {
    const float gi = g[i];
    float pi = mul(p[i], s.decay);
    const float mi = torch_lerp(m[i], gi, s.m_weight);
    const float vi = add(mul(v[i], s.beta2), mul(mul(s.v_weight, gi), gi));
    pi = add(pi, (mul(-s.step_size, mi)) / add(sqrtf(vi) / s.bc2_sqrt, s.eps));
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
  }
}

}  // namespace

void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const cpu::AdamWHyper& h, void* stream) {
  if (n == 0) return;
  const double t = double(h.step);
  const AdamWScalars s{float(1.0 - h.lr * h.weight_decay),
                       float(1.0 - h.beta1),
                       float(h.beta2),
                       float(1.0 - h.beta2),
                       float(h.lr / (1.0 - std::pow(h.beta1, t))),
                       float(std::sqrt(1.0 - std::pow(h.beta2, t))),
                       float(h.eps)};
  adamw_kernel<<<grid_for(n), kThreads, 0, as_stream(stream)>>>(p, g, m, v, n, s);
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
