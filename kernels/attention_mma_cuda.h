// Register-resident tensor-core building blocks of the mma.sync attention kernels (attention_mma.cu,
// attention_mma_bwd.cu): PTX mma.m16n8k16 (bf16 in, fp32 accumulate), ldmatrix, cp.async, and the warp-level tile
// products the kernels are made of. CUDA code: include from .cu files only.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16", bf16). A warp's lane = 4 grp + tig
// (grp = lane / 4 in 0..7, tig = lane % 4). A .b32 register holds two bf16, the lower column in the low half.
//   A [16 x 16] row-major, 4 regs: a0 = (row grp, cols 2tig, 2tig+1), a1 = (row grp+8, same cols),
//                                  a2 = (row grp, cols 2tig+8, +9),  a3 = (row grp+8, cols 2tig+8, +9)
//   B [16 x 8] ("col"), 2 regs:    b0 = (k rows 2tig, 2tig+1; col grp),  b1 = (k rows 2tig+8, +9; col grp)
//   C [16 x 8] fp32, 4 regs:       c0, c1 = (row grp, cols 2tig, 2tig+1), c2, c3 = (row grp+8, same cols)
// ldmatrix.x4 loads four 8x8 bf16 matrices; lanes 8m..8m+7 give the 8 row addresses of matrix m, and each lane
// receives register m = (row grp, cols 2tig, 2tig+1) of matrix m; with .trans, (rows 2tig, 2tig+1; col grp).
// So, in a row-major smem tile X (16-byte aligned rows):
//   A fragment of X[r0.., c0..]: lane gives &X[r0 + lane % 16][c0 + 8 (lane / 16)]           (load_a)
//   B fragments for C += A B with B[k][n] = X[n][k] (X's rows are B's columns: S = Q K^T), two n8 tiles:
//     lane gives &X[n0 + lane % 8 + 8 (lane / 16)][k0 + 8 (lane / 8 % 2)]; regs {0,1} = tile n0, {2,3} = n0+8
//                                                                                              (load_b_rows)
//   B fragments with B[k][n] = X[k][n] (X's rows are B's rows: O = P V), .trans, two n8 tiles:
//     lane gives &X[k0 + lane % 8 + 8 (lane / 8 % 2)][n0 + 8 (lane / 16)]; regs {0,1} = n0, {2,3} = n0+8
//                                                                                              (load_b_cols)
//   An accumulator row block C [16 x 16 k] turns into A fragments of a product over those 16 k columns without
//   leaving registers: A k-step kk = {pack(C[2kk] c0,c1), pack(C[2kk] c2,c3), pack(C[2kk+1] c0,c1),
//   pack(C[2kk+1] c2,c3)} (to_a): the FlashAttention-2 trick that keeps P and dS in registers.
#pragma once
#include <cstdint>

#include "kernels/attention_tile_cuda.h"
#include "kernels/mma_cuda.h"

namespace qsft::cuda::attn {

// Auto -> Large or Small for the forward (forward) or backward pass at head dim D: QSFT_ATTENTION_TILES when set,
// else Large where two of its blocks fit an SM (measured faster on an H200), Small where they do not
// (attention_cuda.h); host side.
AttentionTiles resolve_tiles(int64_t D, AttentionTiles tiles, bool forward);

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Row stride (elements) of a bf16 [rows][D] tile: +8 elements (16 bytes) so that the 8 rows an ldmatrix phase reads
// fall in 8 different 16-byte bank groups (a D-element stride alone is a multiple of 128 bytes: 8-way conflicts).
template <int D>
inline constexpr int kLdm = D + 8;

using cuda::smem_u32;  // attn::smem_u32 in the wgmma files

// Two floats as a bf16 pair, lo in the low half (the lower column of a fragment register).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// 16 bytes global -> shared, asynchronously; with valid == false the 16 bytes are zero-filled (src not read).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async4(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// dst[r][0:D] (stride kLdm<D>) <- rows row0 + r of head `head` of src [T, heads, dh] (token rows ld elements apart:
// packed or a strided head view), r < rows; zeros at and beyond T and in the columns [dh, D) that pad a head dim
// dh < D (a multiple of 8) to the kernel's D: zero columns add nothing to any product. Issued by all kThreads
// threads of the block, asynchronously (commit and wait are the caller's). Thread x copies the 16 bytes at column
// 8 (x % (D / 8)) of rows x / (D / 8) + kStep i: its source and destination advance by a fixed step, so a vector
// costs an add and a compare (rows is a constant at every call: the loop unrolls).
template <int D, int kThreads>
__device__ __forceinline__ void cp_async_rows(bf16* dst, const bf16* src, int64_t row0, int rows, int64_t T, int64_t ld,
                                              int64_t head, int dh) {
  constexpr int kVecs = D / 8, kStep = kThreads / kVecs;
  static_assert(kThreads % kVecs == 0, "a thread's vectors share one column");
  const int r0 = int(threadIdx.x) / kVecs, c = int(threadIdx.x) % kVecs * 8;
  const int in_range = int(max(int64_t(0), min(T - row0, int64_t(rows))));  // rows below T
  const bool col_ok = c < dh;
  const bf16* s = src + (row0 + r0) * ld + head * dh + c;
  const int64_t s_step = kStep * ld;
  bf16* d = dst + r0 * kLdm<D> + c;
#pragma unroll
  for (int i = 0; i < (rows + kStep - 1) / kStep; ++i, s += s_step) {
    const int r = r0 + i * kStep;
    if (rows % kStep != 0 && r >= rows) break;  // (r0 < kStep: only a partial last step can pass rows)
    const bool ok = col_ok && r < in_range;
    cp_async16(d + i * kStep * kLdm<D>, ok ? s : src, ok);
  }
}
// dst[r] <- src[row0 + r] (fp32), r < rows; zeros at and beyond T.
template <int kThreads>
__device__ __forceinline__ void cp_async_floats(float* dst, const float* src, int64_t row0, int rows, int64_t T) {
  const int in_range = int(max(int64_t(0), min(T - row0, int64_t(rows))));
#pragma unroll
  for (int i = 0; i < (rows + kThreads - 1) / kThreads; ++i) {  // rows is a constant: unrolled
    const int r = int(threadIdx.x) + i * kThreads;
    if (r >= rows) break;
    const bool ok = r < in_range;
    cp_async4(dst + r, ok ? src + row0 + r : src, ok);
  }
}

// A fragment of k-step kk from fp32 accumulators c[n8 tile][4] holding a [16 x 8 NT] row block (see above).
template <int NT>
__device__ __forceinline__ void to_a(uint32_t (&a)[4], const float (&c)[NT][4], int kk) {
  a[0] = pack_bf16(c[2 * kk][0], c[2 * kk][1]);
  a[1] = pack_bf16(c[2 * kk][2], c[2 * kk][3]);
  a[2] = pack_bf16(c[2 * kk + 1][0], c[2 * kk + 1][1]);
  a[3] = pack_bf16(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

template <int RT, int NT>
__device__ __forceinline__ void zero(float (&c)[RT][NT][4]) {
#pragma unroll
  for (int m = 0; m < RT; ++m)
#pragma unroll
    for (int t = 0; t < NT; ++t) c[m][t][0] = c[m][t][1] = c[m][t][2] = c[m][t][3] = 0.0f;
}

// The warp-level products below work on RT row tiles of 16 rows (one warp's 16 RT rows): c[m][t] is the n8 tile t
// of row tile m. Each B fragment pair is loaded once and used for all RT row tiles.

// c[m][t] += af[m] B_t over the n8 tiles t of B[k][n] = X[n][k] (X [8 NT rows][16] at x, stride ldx): one k-step.
template <int RT, int NT>
__device__ __forceinline__ void mma_step_abt(float (&c)[RT][NT][4], const uint32_t (&af)[RT][4], const bf16* x,
                                             int ldx) {
  static_assert(NT % 2 == 0, "n tiles in pairs");
#pragma unroll
  for (int t = 0; t < NT; t += 2) {
    uint32_t b[4];
    load_b_rows(b, x + t * 8 * ldx, ldx);
#pragma unroll
    for (int m = 0; m < RT; ++m) {
      mma_16816(c[m][t], af[m], b[0], b[1]);
      mma_16816(c[m][t + 1], af[m], b[2], b[3]);
    }
  }
}

// c [16 RT x 8 NT] += A [16 RT x K] X^T with A's top-left at a (row-major, stride lda) and X [8 NT rows][K] at x
// (stride ldx): the products of a warp's rows with 8 NT rows of another tile (q k^T, k q^T, dout v^T, ...).
template <int K, int RT, int NT>
__device__ __forceinline__ void warp_abt(float (&c)[RT][NT][4], const bf16* a, int lda, const bf16* x, int ldx) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    uint32_t af[RT][4];
#pragma unroll
    for (int m = 0; m < RT; ++m) load_a(af[m], a + 16 * m * lda + kk * 16, lda);
    mma_step_abt(c, af, x + kk * 16, ldx);
  }
}
// Same with A's fragments already in registers (af[k-step][m]).
template <int K, int RT, int NT>
__device__ __forceinline__ void warp_abt_reg(float (&c)[RT][NT][4], const uint32_t (&af)[K / 16][RT][4], const bf16* x,
                                             int ldx) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) mma_step_abt(c, af[kk], x + kk * 16, ldx);
}

// acc[m][t] += af[m] B_t over the n8 tiles t of B[k][n] = X[k][n] (X [16 rows][8 NT] at x, stride ldx): one k-step.
template <int RT, int NT>
__device__ __forceinline__ void mma_step_ab(float (&acc)[RT][NT][4], const uint32_t (&af)[RT][4], const bf16* x,
                                            int ldx) {
  static_assert(NT % 2 == 0, "n tiles in pairs");
#pragma unroll
  for (int t = 0; t < NT; t += 2) {
    uint32_t b[4];
    load_b_cols(b, x + t * 8, ldx);
#pragma unroll
    for (int m = 0; m < RT; ++m) {
      mma_16816(acc[m][t], af[m], b[0], b[1]);
      mma_16816(acc[m][t + 1], af[m], b[2], b[3]);
    }
  }
}

// acc [16 RT x 8 NT] += P X with P [16 RT x K] the bf16 rounding of the accumulators p[m][K / 8][4] (registers)
// and X [K rows][8 NT] at x (row-major, stride ldx): P V, dS K, P^T dout, dS^T q.
template <int K, int RT, int NT>
__device__ __forceinline__ void warp_pv(float (&acc)[RT][NT][4], const float (&p)[RT][K / 8][4], const bf16* x,
                                        int ldx) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    uint32_t af[RT][4];
#pragma unroll
    for (int m = 0; m < RT; ++m) to_a(af[m], p[m], kk);
    mma_step_ab(acc, af, x + kk * 16 * ldx, ldx);
  }
}

// The shared-memory stages of the K/V tiles (kBc rows each) a query-major kernel streams: stage st holds k at
// tile 2 st and v at tile 2 st + 1 from base.
template <int D, int kBc, int kThreads>
struct KvStages {
  bf16* base;
  __device__ bf16* k(int st) const { return base + size_t(2 * st) * kBc * kLdm<D>; }
  __device__ bf16* v(int st) const { return base + size_t(2 * st + 1) * kBc * kLdm<D>; }
  // Rows row0.. of kv head g of k and v [T, nkv, D] (row strides s.k_ld, s.v_ld) into stage st (asynchronous).
  __device__ void load(int st, const bf16* k_g, const bf16* v_g, int64_t row0, const AttentionShape& s,
                       int64_t g) const {
    cp_async_rows<D, kThreads>(k(st), k_g, row0, kBc, s.T, s.k_ld, g, int(s.D));
    cp_async_rows<D, kThreads>(v(st), v_g, row0, kBc, s.T, s.v_ld, g, int(s.D));
  }
};

// One step of the two-stage cp.async pipeline every kernel here runs: issues step it + 1's loads into the other
// stage (load_next(stage)) when there is one, then waits for step it's loads and passes a block barrier. The
// caller ends the step with a barrier too (nobody still reads the stage the next step's prefetch overwrites).
template <class LoadNext>
__device__ __forceinline__ void pipeline_wait(int it, int steps, LoadNext&& load_next) {
  if (it + 1 < steps) {
    load_next((it + 1) & 1);
    cp_async_commit();
    cp_async_wait<1>();
  } else {
    cp_async_wait<0>();
  }
  __syncthreads();
}

// 2^x on the SFU in one instruction (ex2.approx.ftz; exp2f adds three around it to handle subnormal results): a
// result below 2^-126 flushes to 0, immaterial for probabilities of at most 1; 2^-inf = 0.
__device__ __forceinline__ float exp2_sfu(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Sum / max over the 4 lanes of a quad (the lanes holding one accumulator row).
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

// Stores a warp's [16 x 8 NT] accumulator rows (times `mul` per row half) as bf16 to rows row_lo (c0, c1) and
// row_lo + 8 (c2, c3) of dst [T, heads, dh] (token rows ld elements apart) at head `head`, skipping rows at or
// beyond T and the padding columns [dh, 8 NT) (dh a multiple of 8: whole n8 tiles).
template <int NT>
__device__ __forceinline__ void store_rows_bf16(bf16* dst, const float (&c)[NT][4], int64_t row_lo, int64_t T,
                                                int64_t ld, int64_t head, int dh, float mul_lo, float mul_hi) {
  const int tig = threadIdx.x & 3;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t row = row_lo + 8 * half;
    if (row >= T) continue;
    const float mul = half ? mul_hi : mul_lo;
    uint32_t* out = reinterpret_cast<uint32_t*>(dst + row * ld + head * dh + 2 * tig);
#pragma unroll
    for (int t = 0; t < NT; ++t)
      if (8 * t < dh) out[t * 4] = pack_bf16(c[t][2 * half] * mul, c[t][2 * half + 1] * mul);
  }
}

}  // namespace qsft::cuda::attn
