// Device helpers shared by the attention kernels (attention.cu, attention_bwd.cu): shared-memory tile geometry,
// tile loads, sequence bounds and the bf16 tensor-core fragments (WMMA 16x16x16, fp32 accumulation).
// CUDA code: include from .cu files only.
#pragma once
#include <mma.h>

#include "kernels/attention_cuda.h"
#include "kernels/kernel_util_cuda.h"

namespace qsft::cuda::attn {

namespace wmma = nvcuda::wmma;
using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using FragBRow = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;  // B[k][n] at b[k * ld + n]
using FragBCol = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;  // B[k][n] at b[n * ld + k]
using FragAcc = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

constexpr int kWarps = 4;  // every kernel: 4 warps, each owning 16 rows of its tile
constexpr int kBlockThreads = kWarps * 32;
constexpr int kWarpRows = 16;

// Row strides in elements, padded so that rows start in different banks; every fragment pointer stays 32-byte
// aligned (WMMA's requirement) because 16 rows of any of these strides span a multiple of 32 bytes.
template <int D>
inline constexpr int ld_bf16 = D + 8;  // bf16 [rows][D] tiles (q, k, v, dout)
template <int D>
inline constexpr int ld_acc = D + 4;  // fp32 [rows][D] accumulators (out, dq, dk, dv)
template <int C>
inline constexpr int ld_score = C + 4;  // fp32 [16][C] scores
template <int C>
inline constexpr int ld_prob = C + 8;  // bf16 [16][C] probabilities / score gradients

// Carves one block's dynamic shared memory front to back (sizes are multiples of 32 bytes).
struct SmemCarver {
  unsigned char* p;
  template <class E>
  __device__ E* take(size_t elems) {
    E* at = reinterpret_cast<E*>(p);
    p += (elems * sizeof(E) + 127) / 128 * 128;
    return at;
  }
};
template <class E>
constexpr size_t smem_bytes(size_t elems) {
  return (elems * sizeof(E) + 127) / 128 * 128;
}

// dst[r][0:D] (row stride ld) = rows row0 + r of head `head` in src [T, heads, dh] (token rows src_ld elements
// apart), r < rows; zeros outside [0, T) and in the columns [dh, D) that pad a head dim dh < D to the kernel's D.
// 16-byte vectors: dh and src_ld are multiples of 8 and src is 16-byte aligned (checked by the launcher).
template <int D>
__device__ void load_rows(bf16* dst, int ld, const bf16* src, int64_t row0, int rows, int64_t T, int64_t src_ld,
                          int64_t head, int dh) {
  constexpr int kVecs = D / 8;
  for (int v = threadIdx.x; v < rows * kVecs; v += blockDim.x) {
    const int r = v / kVecs, c = (v % kVecs) * 8;
    const int64_t t = row0 + r;
    uint4 val = make_uint4(0u, 0u, 0u, 0u);
    if (t >= 0 && t < T && c < dh) val = *reinterpret_cast<const uint4*>(src + t * src_ld + head * dh + c);
    *reinterpret_cast<uint4*>(dst + r * ld + c) = val;
  }
}

// First token of t's sequence, and one past its last.
__device__ __forceinline__ int64_t seq_begin(const AttentionShape& s, int64_t t) {
  return s.cu_seqlens[sequence_of(s.cu_seqlens, s.num_seqs, t)];
}
__device__ __forceinline__ int64_t seq_end(const AttentionShape& s, int64_t t) {
  return s.cu_seqlens[sequence_of(s.cu_seqlens, s.num_seqs, t) + 1];
}

// Heavy-first block order for a key-major pass (the dK/dV passes: attention_mma_bwd_cuda.h, attention_wgmma_bwd.cu).
// Key block b (keys [b kBc, (b + 1) kBc)) walks the query tiles of kBq that see its keys: many near a sequence's
// start, one near its end. Launched in index order the last wave holds heavy blocks: modelled makespan (greedy list
// schedule over the SMs' block slots, 4 packed sequences of 4096, causal) 1.28x the ideal at the 7B shape (4 kv
// heads; 64-key blocks, 2 per SM, or 128-key blocks, 1 per SM) and 1.56-1.59x at 0.5B (2 kv heads); heavy-first
// 1.02x and 1.00x. So block (x, y) of the grid runs kv head y's key block of rank x in the order (query tiles
// descending, index ascending): blocks launch x fastest, each kv head's key blocks heaviest first, the heads one
// after another, and the last wave holds light blocks. (Ranks outer, heads inner models no better, 1.01x, and costs
// the Small dK/dV kernel 8 bytes of spill: ptxas can no longer recompute the kv head from blockIdx.)
// The query-major passes (forward, dQ) gain less: their tiles launch in reversed index order, 1.04x the ideal at 7B
// and 1.08x at 0.5B (heavy-first 1.00x), while the ranking below costs O(blocks) per thread in each of their many
// light blocks, so they keep that order.
// Every block ranks the candidates itself (w: kMaxHeavyFirst + 1 shared ints; blocks^2 / kThreads compares, ~0.5 us
// at 256 key blocks); above kMaxHeavyFirst key blocks, index order. Only which block runs when changes, never an
// order of summation: each gradient element is still summed by one warp in a fixed order (bitwise repeatable).
// Called by every thread before w is used for anything else; returns the key block, ends with a barrier (w free).
constexpr int kMaxHeavyFirst = 2048;
constexpr size_t kHeavyFirstBytes = (kMaxHeavyFirst + 1) * sizeof(int);
template <int kBc, int kBq, int kThreads>
__device__ int heavy_first_key_block(const AttentionShape& s, int rank, int* w) {
  const int blocks = int((s.T + kBc - 1) / kBc);
  if (blocks > kMaxHeavyFirst) return rank;
  for (int b = threadIdx.x; b < blocks; b += kThreads) {  // query tiles that see key block b
    const int64_t k0 = int64_t(b) * kBc;
    w[b] = int((seq_end(s, min(k0 + kBc, s.T) - 1) - k0 + kBq - 1) / kBq);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < blocks; b += kThreads) {
    int r = 0;
    for (int c = 0; c < blocks; ++c) r += w[c] > w[b] || (w[c] == w[b] && c < b);
    if (r == rank) w[kMaxHeavyFirst] = b;
  }
  __syncthreads();
  const int picked = w[kMaxHeavyFirst];
  __syncthreads();
  return picked;
}
// The launch grid of a key-major pass: (key block rank, kv head), mapped by heavy_first_key_block.
template <int kBc>
inline dim3 heavy_first_grid(const AttentionShape& s) {
  return dim3(unsigned((s.T + kBc - 1) / kBc), unsigned(s.nkv));
}

// acc_smem[16][N] (fp32, stride ld_acc) += a[16][K] @ b[K][N]: a row-major bf16 (stride lda), b as FragB reads it.
// N = 16 * n_frags, K = 16 * k_frags; one warp.
template <class FragB, int n_frags, int k_frags>
__device__ void warp_mma_acc(float* acc_smem, int ld_acc_, const bf16* a, int lda, const bf16* b, int b_n_step,
                             int b_k_step, int ldb) {
  for (int nf = 0; nf < n_frags; ++nf) {
    FragAcc acc;
    wmma::load_matrix_sync(acc, acc_smem + nf * 16, ld_acc_, wmma::mem_row_major);
    for (int kf = 0; kf < k_frags; ++kf) {
      FragA fa;
      FragB fb;
      wmma::load_matrix_sync(fa, a + kf * 16, lda);
      wmma::load_matrix_sync(fb, b + nf * b_n_step + kf * b_k_step, ldb);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(acc_smem + nf * 16, acc, ld_acc_, wmma::mem_row_major);
  }
}

// scores[16][16 n_frags] (fp32, stride lds) = a[16][D] @ b^T, b a row-major [16 n_frags][D] bf16 tile (stride ldb):
// the products of 16 rows against n_frags * 16 rows of another tile (q k^T, dout v^T, k q^T, v dout^T).
template <int D, int n_frags>
__device__ void warp_scores(float* scores, int lds, const bf16* a, int lda, const bf16* b, int ldb) {
  for (int nf = 0; nf < n_frags; ++nf) {
    FragAcc acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int kf = 0; kf < D / 16; ++kf) {
      FragA fa;
      FragBCol fb;  // b^T [D][16]: element (d, j) at b[j * ldb + d]
      wmma::load_matrix_sync(fa, a + kf * 16, lda);
      wmma::load_matrix_sync(fb, b + nf * 16 * ldb + kf * 16, ldb);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(scores + nf * 16, acc, lds, wmma::mem_row_major);
  }
}

// Launches kernel (`threads` per block) with `smem` bytes of dynamic shared memory, raising the per-kernel limit
// when above 48 KiB.
template <class Kernel, class... Args>
void launch_with_smem(Kernel kernel, dim3 grid, int threads, size_t smem, cudaStream_t stream, Args... args) {
  if (smem > 48 * 1024) {
    int dev = 0, optin = 0;
    QSFT_CUDA_CHECK(cudaGetDevice(&dev));
    QSFT_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    if (size_t(optin) < smem)
      throw std::runtime_error("attention needs " + std::to_string(smem) +
                               " bytes of shared memory per block; this "
                               "GPU allows " +
                               std::to_string(optin));
    QSFT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  }
  kernel<<<grid, threads, smem, stream>>>(args...);
  QSFT_CUDA_CHECK_LAUNCH();
}

// Calls f(std::integral_constant<int, D>{}) with the instantiated head dim D that runs head dim dh: the smallest of
// 16, 32, 64 and 128 that holds it (the kernels zero-fill the columns [dh, D)).
template <class F>
void dispatch_head_dim(int64_t dh, F&& f) {
  QSFT_CHECK(attention_supports_head_dim(dh),
             "attention: head_dim " + std::to_string(dh) + " is not a multiple of 8 in [8, 128]");
  if (dh <= 16)
    f(std::integral_constant<int, 16>{});
  else if (dh <= 32)
    f(std::integral_constant<int, 32>{});
  else if (dh <= 64)
    f(std::integral_constant<int, 64>{});
  else
    f(std::integral_constant<int, 128>{});
}

// delta[h, t] = sum_d dout[t, h, d] out[t, h, d] (F32 [n, T]): the backward's row term (attention_bwd.cu).
void attention_delta(const AttentionShape& s, const bf16* dout, const bf16* out, float* delta, cudaStream_t stream);

// Host-side checks every launcher shares; the shape with its unset (0) row strides made packed, as the kernels read
// them.
inline AttentionShape check_shape(const AttentionShape& shape, std::initializer_list<const void*> tensors) {
  AttentionShape s = shape;
  QSFT_CHECK(s.nkv > 0 && s.n % s.nkv == 0, "query heads must be a multiple of kv heads");
  QSFT_CHECK(s.num_seqs >= 1 && s.cu_seqlens, "attention needs cu_seqlens");
  for (const void* p : tensors)
    QSFT_CHECK(reinterpret_cast<uintptr_t>(p) % 16 == 0, "attention tensors must be 16-byte aligned");
  if (!s.q_ld) s.q_ld = s.n * s.D;
  if (!s.k_ld) s.k_ld = s.nkv * s.D;
  if (!s.v_ld) s.v_ld = s.nkv * s.D;
  QSFT_CHECK(s.q_ld >= s.n * s.D && s.k_ld >= s.nkv * s.D && s.v_ld >= s.nkv * s.D,
             "attention row strides must hold every head");
  for (int64_t ld : {s.q_ld, s.k_ld, s.v_ld})
    QSFT_CHECK(ld % 8 == 0, "attention row strides must keep rows 16-byte aligned (multiples of 8 elements)");
  return s;
}

}  // namespace qsft::cuda::attn
