// Attention backward, deterministic: no atomics; every gradient element is summed by one block in a fixed order.
//   delta_i = dout_i . out_i                                                 (one warp per query row and head)
//   P_ij = exp(scale q_i.k_j - lse_i),  dS_ij = P_ij (dout_i . v_j - delta_i)    (recomputed from q, k, v, lse)
//   dK/dV, key-major: one block per (64 keys, kv head g), warp w owning keys 16w..16w+15; it walks the query heads
//     of the group and the queries of its keys' sequences in tiles of 32:  dv_j += P_ij dout_i, dk_j += dS_ij q_i
//   dQ, query-major: one block per (64 queries, head h), walking key tiles of 64:  dq_i += dS_ij k_j
// dk and dq are scaled by `scale` at the end. The two passes recompute q k^T and dout v^T (about 1.4x the FLOPs
// of an atomic dQ), which buys bitwise-reproducible gradients without a separate deterministic mode.
// D is the instantiated head dim; a smaller head dim s.D runs with the columns [s.D, D) zero-filled and not stored.
#include "kernels/attention_tile_cuda.h"

namespace qsft::cuda {
namespace {

using namespace attn;

constexpr int kKeys = kWarps * kWarpRows;     // keys per dK/dV block
constexpr int kQTile = 32;                    // queries per step of the dK/dV block
constexpr int kQueries = kWarps * kWarpRows;  // queries per dQ block
constexpr int kKTile = 64;                    // keys per step of the dQ block

// delta[h, i] = sum_d dout[i, h, d] out[i, h, d]; one warp per (i, h).
__global__ void delta_kernel(const bf16* dout, const bf16* out, int64_t T, int64_t n, int64_t D, float* delta) {
  const int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;  // = i * n + h
  if (row >= T * n) return;
  const int lane = threadIdx.x & 31;
  float s = 0.0f;
  for (int64_t d = lane; d < D; d += 32) s += __bfloat162float(dout[row * D + d]) * __bfloat162float(out[row * D + d]);
  s = warp_sum(s);
  if (lane == 0) delta[(row % n) * T + row / n] = s;
}

template <int D>
size_t dkdv_smem_bytes() {
  return 2 * smem_bytes<bf16>(size_t(kKeys) * ld_bf16<D>)           // k, v (the block's keys)
         + 2 * smem_bytes<bf16>(size_t(kQTile) * ld_bf16<D>)        // q, dout (the query tile)
         + 2 * smem_bytes<float>(kQTile)                            // lse, delta of the query tile
         + 2 * smem_bytes<float>(size_t(kKeys) * ld_score<kQTile>)  // S^T, dP^T per warp
         + 2 * smem_bytes<bf16>(size_t(kKeys) * ld_prob<kQTile>)    // P^T, dS^T per warp
         + 2 * smem_bytes<float>(size_t(kKeys) * ld_acc<D>);        // dk, dv accumulators
}

template <int D>
__global__ void __launch_bounds__(kBlockThreads)
    attention_dkdv_kernel(AttentionShape s, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                          const float* lse, const float* delta, bf16* dk, bf16* dv) {
  extern __shared__ __align__(128) unsigned char smem[];
  SmemCarver carve{smem};
  bf16* k_s = carve.take<bf16>(size_t(kKeys) * ld_bf16<D>);
  bf16* v_s = carve.take<bf16>(size_t(kKeys) * ld_bf16<D>);
  bf16* q_s = carve.take<bf16>(size_t(kQTile) * ld_bf16<D>);
  bf16* do_s = carve.take<bf16>(size_t(kQTile) * ld_bf16<D>);
  float* lse_s = carve.take<float>(kQTile);
  float* delta_s = carve.take<float>(kQTile);
  float* st_s = carve.take<float>(size_t(kKeys) * ld_score<kQTile>);
  float* dpt_s = carve.take<float>(size_t(kKeys) * ld_score<kQTile>);
  bf16* pt_s = carve.take<bf16>(size_t(kKeys) * ld_prob<kQTile>);
  bf16* dst_s = carve.take<bf16>(size_t(kKeys) * ld_prob<kQTile>);
  float* dk_s = carve.take<float>(size_t(kKeys) * ld_acc<D>);
  float* dv_s = carve.take<float>(size_t(kKeys) * ld_acc<D>);

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t k0 = int64_t(blockIdx.x) * kKeys, g = blockIdx.y, group = s.n / s.nkv;
  const int dh = int(s.D);
  const float scale = rsqrtf(float(dh));
  // This lane's key row r of the warp's 16 and its half of the kQTile query columns.
  const int r = lane >> 1, half = lane & 1;
  const int64_t j = k0 + warp * kWarpRows + r;
  const bool key_valid = j < s.T;
  const int64_t end_j = key_valid ? seq_end(s, j) : 0;
  const int wk = warp * kWarpRows;  // first row of the warp in the key-major tiles
  float* st_w = st_s + wk * ld_score<kQTile>;
  float* dpt_w = dpt_s + wk * ld_score<kQTile>;
  bf16* pt_w = pt_s + wk * ld_prob<kQTile>;
  bf16* dst_w = dst_s + wk * ld_prob<kQTile>;

  load_rows<D>(k_s, ld_bf16<D>, k, k0, kKeys, s.T, s.k_ld, g, dh);
  load_rows<D>(v_s, ld_bf16<D>, v, k0, kKeys, s.T, s.v_ld, g, dh);
  for (int c = threadIdx.x; c < kKeys * D; c += blockDim.x) {
    dk_s[(c / D) * ld_acc<D> + c % D] = 0.0f;
    dv_s[(c / D) * ld_acc<D> + c % D] = 0.0f;
  }
  const int64_t q_end = seq_end(s, min(k0 + kKeys, s.T) - 1);  // queries [k0, q_end) can see these keys
  for (int64_t h = g * group; h < (g + 1) * group; ++h)
    for (int64_t q0 = k0; q0 < q_end; q0 += kQTile) {
      __syncthreads();  // the previous query tile is no longer read (and k, v, dk, dv are ready)
      load_rows<D>(q_s, ld_bf16<D>, q, q0, kQTile, s.T, s.q_ld, h, dh);
      load_rows<D>(do_s, ld_bf16<D>, dout, q0, kQTile, s.T, s.n * dh, h, dh);
      for (int c = threadIdx.x; c < kQTile; c += blockDim.x) {
        const bool ok = q0 + c < s.T;
        lse_s[c] = ok ? lse[h * s.T + q0 + c] : 0.0f;
        delta_s[c] = ok ? delta[h * s.T + q0 + c] : 0.0f;
      }
      __syncthreads();
      warp_scores<D, kQTile / 16>(st_w, ld_score<kQTile>, k_s + wk * ld_bf16<D>, ld_bf16<D>, q_s, ld_bf16<D>);
      warp_scores<D, kQTile / 16>(dpt_w, ld_score<kQTile>, v_s + wk * ld_bf16<D>, ld_bf16<D>, do_s, ld_bf16<D>);
      __syncwarp();
#pragma unroll
      for (int c = 0; c < kQTile / 2; ++c) {
        const int col = half * (kQTile / 2) + c;
        const int64_t i = q0 + col;
        const bool ok = key_valid && i >= j && i < end_j;  // i < end_j also means i < T
        const float p = ok ? expf(st_w[r * ld_score<kQTile> + col] * scale - lse_s[col]) : 0.0f;
        const float ds = p * (dpt_w[r * ld_score<kQTile> + col] - delta_s[col]);
        pt_w[r * ld_prob<kQTile> + col] = __float2bfloat16_rn(p);
        dst_w[r * ld_prob<kQTile> + col] = __float2bfloat16_rn(ds);
      }
      __syncwarp();
      // dv_w [16, D] += P^T_w [16, kQTile] dout [kQTile, D];  dk_w += dS^T_w q
      warp_mma_acc<FragBRow, D / 16, kQTile / 16>(dv_s + wk * ld_acc<D>, ld_acc<D>, pt_w, ld_prob<kQTile>, do_s, 16,
                                                  16 * ld_bf16<D>, ld_bf16<D>);
      warp_mma_acc<FragBRow, D / 16, kQTile / 16>(dk_s + wk * ld_acc<D>, ld_acc<D>, dst_w, ld_prob<kQTile>, q_s, 16,
                                                  16 * ld_bf16<D>, ld_bf16<D>);
    }
  __syncthreads();
  for (int c = threadIdx.x; c < kKeys * D; c += blockDim.x) {
    const int row = c / D, d = c % D;
    const int64_t jj = k0 + row;
    if (jj >= s.T || d >= dh) continue;
    dk[jj * s.k_ld + g * dh + d] = __float2bfloat16_rn(dk_s[row * ld_acc<D> + d] * scale);
    dv[jj * s.v_ld + g * dh + d] = __float2bfloat16_rn(dv_s[row * ld_acc<D> + d]);
  }
}

template <int D>
size_t dq_smem_bytes() {
  return 4 * smem_bytes<bf16>(size_t(kQueries) * ld_bf16<D>)           // q, dout, k, v
         + 2 * smem_bytes<float>(size_t(kQueries) * ld_score<kKTile>)  // S, dP per warp
         + smem_bytes<bf16>(size_t(kQueries) * ld_prob<kKTile>)        // dS per warp
         + smem_bytes<float>(size_t(kQueries) * ld_acc<D>);            // dq accumulator
}

template <int D>
__global__ void __launch_bounds__(kBlockThreads)
    attention_dq_kernel(AttentionShape s, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                        const float* lse, const float* delta, bf16* dq) {
  extern __shared__ __align__(128) unsigned char smem[];
  SmemCarver carve{smem};
  bf16* q_s = carve.take<bf16>(size_t(kQueries) * ld_bf16<D>);
  bf16* do_s = carve.take<bf16>(size_t(kQueries) * ld_bf16<D>);
  bf16* k_s = carve.take<bf16>(size_t(kKTile) * ld_bf16<D>);
  bf16* v_s = carve.take<bf16>(size_t(kKTile) * ld_bf16<D>);
  float* s_s = carve.take<float>(size_t(kQueries) * ld_score<kKTile>);
  float* dp_s = carve.take<float>(size_t(kQueries) * ld_score<kKTile>);
  bf16* ds_s = carve.take<bf16>(size_t(kQueries) * ld_prob<kKTile>);
  float* dq_s = carve.take<float>(size_t(kQueries) * ld_acc<D>);

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t q0 = int64_t(blockIdx.x) * kQueries, h = blockIdx.y, g = h / (s.n / s.nkv);
  const int dh = int(s.D);
  const float scale = rsqrtf(float(dh));
  const int r = lane >> 1, half = lane & 1;
  const int wq = warp * kWarpRows;
  const int64_t i = q0 + wq + r;
  const bool row_valid = i < s.T;
  const int64_t begin_i = row_valid ? seq_begin(s, i) : 0;
  const float lse_i = row_valid ? lse[h * s.T + i] : 0.0f, delta_i = row_valid ? delta[h * s.T + i] : 0.0f;
  float* s_w = s_s + wq * ld_score<kKTile>;
  float* dp_w = dp_s + wq * ld_score<kKTile>;
  bf16* ds_w = ds_s + wq * ld_prob<kKTile>;
  float* dq_w = dq_s + wq * ld_acc<D>;

  load_rows<D>(q_s, ld_bf16<D>, q, q0, kQueries, s.T, s.q_ld, h, dh);
  load_rows<D>(do_s, ld_bf16<D>, dout, q0, kQueries, s.T, s.n * dh, h, dh);
  for (int c = lane; c < kWarpRows * D; c += 32) dq_w[(c / D) * ld_acc<D> + c % D] = 0.0f;
  const int64_t last = min(q0 + kQueries, s.T) - 1;
  for (int64_t k0 = seq_begin(s, q0); k0 <= last; k0 += kKTile) {
    __syncthreads();
    load_rows<D>(k_s, ld_bf16<D>, k, k0, kKTile, s.T, s.k_ld, g, dh);
    load_rows<D>(v_s, ld_bf16<D>, v, k0, kKTile, s.T, s.v_ld, g, dh);
    __syncthreads();
    warp_scores<D, kKTile / 16>(s_w, ld_score<kKTile>, q_s + wq * ld_bf16<D>, ld_bf16<D>, k_s, ld_bf16<D>);
    warp_scores<D, kKTile / 16>(dp_w, ld_score<kKTile>, do_s + wq * ld_bf16<D>, ld_bf16<D>, v_s, ld_bf16<D>);
    __syncwarp();
#pragma unroll
    for (int c = 0; c < kKTile / 2; ++c) {
      const int col = half * (kKTile / 2) + c;
      const int64_t j = k0 + col;
      const bool ok = row_valid && j >= begin_i && j <= i;
      const float p = ok ? expf(s_w[r * ld_score<kKTile> + col] * scale - lse_i) : 0.0f;
      ds_w[r * ld_prob<kKTile> + col] = __float2bfloat16_rn(p * (dp_w[r * ld_score<kKTile> + col] - delta_i));
    }
    __syncwarp();
    // dq_w [16, D] += dS_w [16, kKTile] k [kKTile, D]
    warp_mma_acc<FragBRow, D / 16, kKTile / 16>(dq_w, ld_acc<D>, ds_w, ld_prob<kKTile>, k_s, 16, 16 * ld_bf16<D>,
                                                ld_bf16<D>);
    __syncwarp();
  }
  if (!row_valid) return;
  for (int d = half * (D / 2); d < (half + 1) * (D / 2) && d < dh; ++d)
    dq[i * s.q_ld + h * dh + d] = __float2bfloat16_rn(dq_w[r * ld_acc<D> + d] * scale);
}

}  // namespace

void attn::attention_delta(const AttentionShape& s, const bf16* dout, const bf16* out, float* delta,
                           cudaStream_t stream) {
  const int64_t warps = s.T * s.n;
  delta_kernel<<<unsigned((warps * 32 + 255) / 256), 256, 0, stream>>>(dout, out, s.T, s.n, s.D, delta);
  QSFT_CUDA_CHECK_LAUNCH();
}

void attention_bwd_wmma(const AttentionShape& shape, const void* dout, const void* q, const void* k, const void* v,
                        const void* out, const float* lse, void* dq, void* dk, void* dv, void* scratch, void* stream) {
  if (shape.T == 0) return;
  const AttentionShape s = check_shape(shape, {dout, q, k, v, out, dq, dk, dv});
  const cudaStream_t st = as_stream(stream);
  float* delta = static_cast<float*>(scratch);
  attention_delta(s, static_cast<const bf16*>(dout), static_cast<const bf16*>(out), delta, st);
  dispatch_head_dim(s.D, [&](auto d) {
    constexpr int D = decltype(d)::value;
    const auto* dout_b = static_cast<const bf16*>(dout);
    const auto *q_b = static_cast<const bf16*>(q), *k_b = static_cast<const bf16*>(k);
    const auto* v_b = static_cast<const bf16*>(v);
    launch_with_smem(attention_dkdv_kernel<D>, dim3(unsigned((s.T + kKeys - 1) / kKeys), unsigned(s.nkv)),
                     kBlockThreads, dkdv_smem_bytes<D>(), st, s, dout_b, q_b, k_b, v_b, lse,
                     static_cast<const float*>(delta), static_cast<bf16*>(dk), static_cast<bf16*>(dv));
    launch_with_smem(attention_dq_kernel<D>, dim3(unsigned((s.T + kQueries - 1) / kQueries), unsigned(s.n)),
                     kBlockThreads, dq_smem_bytes<D>(), st, s, dout_b, q_b, k_b, v_b, lse,
                     static_cast<const float*>(delta), static_cast<bf16*>(dq));
  });
}

}  // namespace qsft::cuda
