#include "kernels/decode_attention_cuda.h"
#include "kernels/kernel_util_cuda.h"

#include <algorithm>

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

// Split s of `splits` of a row with len keys: keys [begin, end), chunks of equal size but at least
// kDecodeMinSplitKeys (a short row leaves the last splits empty).
__device__ __forceinline__ void split_range(int64_t len, int s, int splits, int64_t& begin, int64_t& end) {
  const int64_t even = (len + splits - 1) / splits, chunk = even > kDecodeMinSplitKeys ? even : kDecodeMinSplitKeys;
  begin = int64_t(s) * chunk < len ? int64_t(s) * chunk : len;
  end = begin + chunk < len ? begin + chunk : len;
}

// A split's partial result for (row b, head h): m (max score), l (sum of exp(s - m)), acc[D] (sum of
// exp(s - m) v) at partial + ((b * n + h) * splits + s) * (D + 2). A split without keys has l = 0.
__device__ __forceinline__ float* partial_at(float* partial, int64_t b, int64_t h, int s, int splits,
                                             const cpu::DecodeAttentionDims& d) {
  return partial + ((b * d.n + h) * splits + s) * (d.D + 2);
}

// Block (h, b, s): warp w walks keys j = begin + w, begin + w + kWarps, ... of split s; lane l owns elements
// e = l + 32 i of the head. One split (partial == null): the block writes out[b, h]; else its partial result.
template <class E>
__global__ void decode_attention_kernel(const E* q, const E* k_cache, const E* v_cache, const int32_t* slot,
                                        const int32_t* len, cpu::DecodeAttentionDims d, E* out, float* partial) {
  __shared__ float part_m[kWarps], part_l[kWarps];
  __shared__ float part_acc[kWarps][kDecodeAttentionMaxHeadDim];
  const int64_t h = blockIdx.x, b = blockIdx.y, D = d.D, row = d.nkv * D;
  const int split = int(blockIdx.z), splits = int(gridDim.z);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float scale = rsqrtf(float(D));
  const int64_t base = int64_t(slot[b]) * d.S * row + (h / (d.n / d.nkv)) * D;  // key j at base + j * row
  int64_t begin, end;
  split_range(len[b], split, splits, begin, end);
  float qv[kPerLane], acc[kPerLane];
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t e = lane + 32 * i;
    qv[i] = e < D ? load(q + (b * d.n + h) * D + e) : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;  // running max and sum of exp(s - m) of this warp's keys
  for (int64_t j = begin + warp; j < end; j += kWarps) {
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
  // Combine the warps: o = sum_w exp(m_w - M) acc_w, total = sum_w exp(m_w - M) l_w (a warp without keys has
  // l = 0); out = o / total.
  float M = -INFINITY;
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, part_m[w]);
  float total = 0.0f;
  for (int w = 0; w < kWarps; ++w) total += part_l[w] > 0.0f ? expf(part_m[w] - M) * part_l[w] : 0.0f;
  float* mine = partial ? partial_at(partial, b, h, split, splits, d) : nullptr;
  if (mine && threadIdx.x == 0) {
    mine[0] = M;
    mine[1] = total;
  }
  for (int64_t e = threadIdx.x; e < D; e += blockDim.x) {
    float o = 0.0f;
    for (int w = 0; w < kWarps; ++w)
      if (part_l[w] > 0.0f) o += expf(part_m[w] - M) * part_acc[w][e];
    if (mine) {
      mine[2 + e] = o;
    } else {
      store(out + (b * d.n + h) * D + e, o / total);
    }
  }
}

// Block (h, b): out[b, h] = sum_s exp(m_s - M) acc_s / sum_s exp(m_s - M) l_s over the splits with keys
// (l_s > 0; split 0 always has one: len >= 1), M = their largest m_s.
template <class E>
__global__ void decode_combine_kernel(float* partial, int splits, cpu::DecodeAttentionDims d, E* out) {
  const int64_t h = blockIdx.x, b = blockIdx.y;
  float M = -INFINITY, total = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float* p = partial_at(partial, b, h, s, splits, d);
    if (p[1] > 0.0f) M = fmaxf(M, p[0]);
  }
  for (int s = 0; s < splits; ++s) {
    const float* p = partial_at(partial, b, h, s, splits, d);
    if (p[1] > 0.0f) total += expf(p[0] - M) * p[1];
  }
  for (int64_t e = threadIdx.x; e < d.D; e += blockDim.x) {
    float o = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float* p = partial_at(partial, b, h, s, splits, d);
      if (p[1] > 0.0f) o += expf(p[0] - M) * p[2 + e];
    }
    store(out + (b * d.n + h) * d.D + e, o / total);
  }
}

// Enough blocks to give every SM this many (each has 4 warps with one key load in flight: the SM needs many to
// keep its memory busy); and at most this many splits.
constexpr int64_t kBlocksPerSm = 8;
constexpr int64_t kMaxSplits = 128;

int64_t target_blocks() { return kBlocksPerSm * sm_count(); }

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

int decode_attention_splits(const cpu::DecodeAttentionDims& d) {
  const int64_t blocks = d.B * d.n, target = target_blocks();
  if (blocks >= target) return 1;
  const int64_t by_blocks = (target + blocks - 1) / blocks;
  const int64_t by_length = (d.S + kDecodeMinSplitKeys - 1) / kDecodeMinSplitKeys;
  return int(std::max<int64_t>(1, std::min({by_blocks, by_length, kMaxSplits})));
}

// Splits > 1 only while B n < target, and then B n splits < B n (target / (B n) + 1) < 2 target.
size_t decode_attention_scratch_bytes(const cpu::DecodeAttentionDims& d) {
  return size_t(2 * target_blocks()) * size_t(d.D + 2) * sizeof(float);
}

void decode_attention(DType dt, const void* q, const void* k_cache, const void* v_cache, const int32_t* slot,
                      const int32_t* len, const cpu::DecodeAttentionDims& d, void* out, void* scratch, void* stream) {
  if (d.B == 0) return;
  QSFT_CHECK(d.D <= kDecodeAttentionMaxHeadDim, "decode attention: head_dim " + std::to_string(d.D) + " > 256");
  QSFT_CHECK(d.B <= 65535, "decode attention: " + std::to_string(d.B) + " rows in one call (at most 65535)");
  const int splits = decode_attention_splits(d);
  float* partial = splits > 1 ? static_cast<float*>(scratch) : nullptr;
  dispatch_float(dt, "decode_attention", [&](auto tag) {
    using E = decltype(tag);
    const dim3 grid(unsigned(d.n), unsigned(d.B), unsigned(splits));
    decode_attention_kernel<E><<<grid, 32 * kWarps, 0, as_stream(stream)>>>(
        static_cast<const E*>(q), static_cast<const E*>(k_cache), static_cast<const E*>(v_cache), slot, len, d,
        static_cast<E*>(out), partial);
    if (partial)
      decode_combine_kernel<E><<<dim3(unsigned(d.n), unsigned(d.B)), 32 * kWarps, 0, as_stream(stream)>>>(
          partial, splits, d, static_cast<E*>(out));
  });
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
