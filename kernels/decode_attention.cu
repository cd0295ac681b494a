#include "kernels/decode_attention_cuda.h"
#include "kernels/kernel_util_cuda.h"

namespace qsft::cuda {
namespace {

constexpr int kWarps = 4;                                          // warps per block: they split the keys
constexpr int kPerLane = int(kDecodeAttentionMaxHeadDim / 32);     // output elements a lane may hold

template <class E>
__global__ void kv_append_kernel(const E* k_new, const E* v_new, const int32_t* slot, const int32_t* len,
                                 cpu::DecodeAttentionDims d, E* k_cache, E* v_cache) {
  const int64_t row = d.nkv * d.D;
  QSFT_GRID_STRIDE(i, d.B * row) {
    const int64_t b = i / row, e = i % row;
    const int64_t at = (int64_t(slot[b]) * d.S + len[b] - 1) * row + e;
    k_cache[at] = k_new[i];
    v_cache[at] = v_new[i];
  }
}

// Block (h, b): warp w walks keys j = w, w + kWarps, ...; lane l owns elements e = l + 32 i of the head.
template <class E>
__global__ void decode_attention_kernel(const E* q, const E* k_cache, const E* v_cache, const int32_t* slot,
                                        const int32_t* len, cpu::DecodeAttentionDims d, E* out) {
  __shared__ float part_m[kWarps], part_l[kWarps];
  __shared__ float part_acc[kWarps][kDecodeAttentionMaxHeadDim];
  const int64_t h = blockIdx.x, b = blockIdx.y, D = d.D, row = d.nkv * D;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float scale = rsqrtf(float(D));
  const int64_t base = int64_t(slot[b]) * d.S * row + (h / (d.n / d.nkv)) * D;  // key j at base + j * row
  float qv[kPerLane], acc[kPerLane];
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t e = lane + 32 * i;
    qv[i] = e < D ? load(q + (b * d.n + h) * D + e) : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;  // running max and sum of exp(s - m) of this warp's keys
  for (int64_t j = warp; j < len[b]; j += kWarps) {
    const E* k = k_cache + base + j * row;
    float s = 0.0f;
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t e = lane + 32 * i;
      if (e < D) s += qv[i] * load(k + e);
    }
    s = warp_sum(s) * scale;
    const float m_new = fmaxf(m, s), correction = expf(m - m_new), p = expf(s - m_new);
    l = l * correction + p;
    const E* v = v_cache + base + j * row;
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t e = lane + 32 * i;
      acc[i] = acc[i] * correction + (e < D ? p * load(v + e) : 0.0f);
    }
    m = m_new;
  }
  if (lane == 0) {
    part_m[warp] = m;
    part_l[warp] = l;
  }
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t e = lane + 32 * i;
    if (e < D) part_acc[warp][e] = acc[i];
  }
  __syncthreads();
  // Combine the warps: out = sum_w exp(m_w - M) acc_w / sum_w exp(m_w - M) l_w (a warp without keys has l = 0).
  float M = -INFINITY;
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, part_m[w]);
  float total = 0.0f;
  for (int w = 0; w < kWarps; ++w) total += part_l[w] > 0.0f ? expf(part_m[w] - M) * part_l[w] : 0.0f;
  for (int64_t e = threadIdx.x; e < D; e += blockDim.x) {
    float o = 0.0f;
    for (int w = 0; w < kWarps; ++w)
      if (part_l[w] > 0.0f) o += expf(part_m[w] - M) * part_acc[w][e];
    store(out + (b * d.n + h) * D + e, o / total);
  }
}

}  // namespace

void kv_cache_append(DType dt, const void* k_new, const void* v_new, const int32_t* slot, const int32_t* len,
                     const cpu::DecodeAttentionDims& d, void* k_cache, void* v_cache, void* stream) {
  if (d.B == 0) return;
  dispatch_float(dt, "kv_cache_append", [&](auto tag) {
    using E = decltype(tag);
    kv_append_kernel<E><<<grid_for(d.B * d.nkv * d.D), kThreads, 0, as_stream(stream)>>>(
        static_cast<const E*>(k_new), static_cast<const E*>(v_new), slot, len, d, static_cast<E*>(k_cache),
        static_cast<E*>(v_cache));
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

void decode_attention(DType dt, const void* q, const void* k_cache, const void* v_cache, const int32_t* slot,
                      const int32_t* len, const cpu::DecodeAttentionDims& d, void* out, void* stream) {
  if (d.B == 0) return;
  QSFT_CHECK(d.D <= kDecodeAttentionMaxHeadDim, "decode attention: head_dim " + std::to_string(d.D) + " > 256");
  dispatch_float(dt, "decode_attention", [&](auto tag) {
    using E = decltype(tag);
    const dim3 grid(unsigned(d.n), unsigned(d.B));
    decode_attention_kernel<E><<<grid, 32 * kWarps, 0, as_stream(stream)>>>(
        static_cast<const E*>(q), static_cast<const E*>(k_cache), static_cast<const E*>(v_cache), slot, len, d,
        static_cast<E*>(out));
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
