// The LoRA A gradients with dropout (kernels/lora_dropout_cuda.h): [dA_1; ...; dA_n] += [du_j^T dropout_j(x)].
// A block takes kBC = 64 columns of x (of dA) and all n r rows of dA over a range of tokens. Per k-step of BT tokens
// (64; 32 when n r > 128) it stages, row-major as read (16-byte stores), the du tile [BT, n r] and each member's
// dropout of the x tile [BT, kBC] (x scaled and rounded once, then and-ed with the member's mask: the dropout
// kernel's bf16 values); the mma operands come transposed out of ldmatrix (du^T as A, dropout_j(x) as B:
// kernels/mma_cuda.h). Each of the 4 warps owns 16 columns (two n8 tiles) of every m16 row tile (member j's rows
// [j r, (j + 1) r): r a multiple of 16) and runs mma.sync m16n8k16 (bf16 in, fp32 accumulation). The next k-step's
// 16-byte global loads are issued before this step's mma's. Tokens are split over blocks when the columns alone give
// fewer than ~4 blocks per SM; the fp32 partial sums are then added to dA in a fixed order (deterministic). x is read
// once: ~2 n r FLOP per element, and n hashes per 4 elements for the masks, as in the forward (lora_dropout.cu).
// (45ffbc3's version staged the tiles transposed element by element and converted every draw to a float: it lost
// to dropout then a GEMM per member, 0.74-0.99x on the H200.)
#include <algorithm>

#include "kernels/lora_dropout_cuda.h"
#include "kernels/lora_dropout_mma_cuda.h"
#include "kernels/reduce_cuda.h"

namespace qsft::cuda {
namespace {

using namespace lora_mma;

constexpr int kBC = 64;                   // columns of x (of dA) per block: 4 warps x 16
constexpr int kXPitch = kBC + 8;          // bf16 row pitch of the x tiles: 144 bytes, ldmatrix rows on distinct banks
constexpr int64_t kMinSplitTokens = 256;  // a split of the tokens covers at least 256 of them
// Tokens per k-step for MT m16 row tiles: 64 (four mma k16 steps) while the tiles fit 48 KiB of static shared
// memory (MT 8: 45056 bytes), else 32.
constexpr int tokens_for(int MT) { return MT <= 8 ? 64 : 32; }

// MT: m16 row tiles (16 MT >= N = n r; rows past N stay zero). grid (ceil(in / kBC), splits); split s covers tokens
// [s t_split, (s + 1) t_split). partial: null (one split: added to dA), else fp32 [splits, N, in]. 4 blocks an SM up
// to 4 row tiles (q/k/v's 3 at r 16: 124 registers on sm_90, no spills; 134 unbounded, so 3 blocks).
template <int MT, int BT = tokens_for(MT)>
__global__ void __launch_bounds__(kBlock, MT <= 4 ? 4 : 2)
    lora_da_dropout_kernel(const bf16* __restrict__ du, const bf16* __restrict__ x, int64_t T, int64_t in, int r, int n,
                           uint32_t threshold, float keep_scale, Seeds seeds, int64_t t_split, float* dA,
                           float* partial) {
  constexpr int kUPitch = 16 * MT + 8;  // bf16 row pitch of the du tile: 16 bytes past a multiple of 32
  constexpr int kVecsPerX = kBC / 8, kVecsPerU = 2 * MT;          // 16-byte vectors in a tile row
  constexpr int kVecsX = BT * kVecsPerX / kBlock;                 // x vectors per thread per k-step
  constexpr int kVecsU = (BT * kVecsPerU + kBlock - 1) / kBlock;  // du vectors per thread per k-step
  __shared__ __align__(16) bf16 us[BT][kUPitch];                  // du [tokens, rows of dA]
  __shared__ __align__(16) bf16 xs[kMembers][BT][kXPitch];        // dropout_j(x) [tokens, columns]
  const int tid = threadIdx.x, warp = tid / 32, g = (tid % 32) / 4, tig = tid % 4;
  const int N = n * r;
  const int64_t c0 = int64_t(blockIdx.x) * kBC;
  const int64_t t_begin = int64_t(blockIdx.y) * t_split, t_end = min(T, t_begin + t_split);
  int member_of[MT];  // the member whose rows m16 tile i holds; kMembers: past N
#pragma unroll
  for (int i = 0; i < MT; ++i) member_of[i] = 16 * i < N ? 16 * i / r : kMembers;

  uint4 xr[kVecsX], ur[kVecsU];
  const uint4 zero = make_uint4(0, 0, 0, 0);
  auto load = [&](int64_t t0) {  // the k-step at token t0 into registers: zeros past t_end, in and N
#pragma unroll
    for (int v = 0; v < kVecsX; ++v) {
      const int idx = tid + v * kBlock;
      const int64_t t = t0 + idx / kVecsPerX, c = c0 + (idx % kVecsPerX) * 8;
      xr[v] = t < t_end && c < in ? *reinterpret_cast<const uint4*>(x + t * in + c) : zero;
    }
#pragma unroll
    for (int v = 0; v < kVecsU; ++v) {
      const int idx = tid + v * kBlock, m = (idx % kVecsPerU) * 8;
      const int64_t t = t0 + idx / kVecsPerU;
      ur[v] = idx < BT * kVecsPerU && t < t_end && m < N ? *reinterpret_cast<const uint4*>(du + t * N + m) : zero;
    }
  };
  auto stage = [&](int64_t t0) {  // the registers into shared memory; x once per member, dropped out
#pragma unroll
    for (int v = 0; v < kVecsX; ++v) {
      const int idx = tid + v * kBlock, tt = idx / kVecsPerX, col = (idx % kVecsPerX) * 8;
      const int64_t t = t0 + tt, c = c0 + col;
      const bool inside = t < t_end && c < in;
      const uint4 kept = kept_values(xr[v], keep_scale);
#pragma unroll
      for (int j = 0; j < kMembers; ++j)
        if (j < n)
          *reinterpret_cast<uint4*>(&xs[j][tt][col]) =
              inside ? dropped(kept, seeds.s[j], uint64_t(t * in + c), threshold) : zero;
    }
#pragma unroll
    for (int v = 0; v < kVecsU; ++v) {
      const int idx = tid + v * kBlock;
      if (idx < BT * kVecsPerU) *reinterpret_cast<uint4*>(&us[idx / kVecsPerU][(idx % kVecsPerU) * 8]) = ur[v];
    }
  };

  float acc[MT][2][4] = {};  // [m16 tile i][n8 tile h of the warp's 16 columns]
  load(t_begin);
  for (int64_t t0 = t_begin; t0 < t_end; t0 += BT) {
    __syncthreads();  // every warp is done with the previous k-step's tiles
    stage(t0);
    __syncthreads();
    if (t0 + BT < t_end) load(t0 + BT);
#pragma unroll
    for (int kk = 0; kk < BT; kk += 16) {
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        const int j = member_of[i];
        if (j >= n) continue;
        uint32_t a[4], b[4];
        load_a_trans(a, &us[kk][16 * i], kUPitch);       // du^T [16 rows of dA, 16 tokens]
        load_b_cols(b, &xs[j][kk][16 * warp], kXPitch);  // dropout_j(x) [16 tokens, the warp's 16 columns]
        mma_16816(acc[i][0], a, b[0], b[1]);
        mma_16816(acc[i][1], a, b[2], b[3]);
      }
    }
  }
  // acc[i][h][2 e + k]: row 16 i + g + 8 e of dA, column c0 + 16 warp + 8 h + 2 tig + k
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t c = c0 + 16 * warp + 8 * h + 2 * tig;  // even, and in is a multiple of 8: c + 1 < in too
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int m = 16 * i + g + 8 * e;
        if (m >= N || c >= in) continue;
        if (partial) {
          *reinterpret_cast<float2*>(partial + (int64_t(blockIdx.y) * N + m) * in + c) =
              make_float2(acc[i][h][2 * e], acc[i][h][2 * e + 1]);
        } else {
          dA[m * in + c] += acc[i][h][2 * e];
          dA[m * in + c + 1] += acc[i][h][2 * e + 1];
        }
      }
    }
}

}  // namespace

bool lora_da_dropout_fits(DType dt, int64_t in, int64_t r, int n, const void* x, const void* du) {
  return r % 16 == 0 && stack_fits(dt, in, r, n, x, du);
}

void lora_da_dropout(const void* du, const void* x, int64_t T, int64_t in, int64_t r, int n, float p,
                     const uint64_t* seeds, float* dA, void* workspace, size_t workspace_bytes, void* stream) {
  if (T == 0) return;
  QSFT_CHECK(lora_da_dropout_fits(DType::BF16, in, r, n, x, du), "lora_da_dropout: shapes the kernel does not take");
  const int64_t N = n * r, c_tiles = ceil_div(in, kBC);
  Seeds s{};
  for (int j = 0; j < n; ++j) s.s[j] = rng::mix64(seeds[j]);
  int64_t splits = 1;
  float* partial = nullptr;
  dispatch_tiles<kMaxRows / 16>(N / 16, [&](auto w) {
    constexpr int MT = decltype(w)::value, BT = tokens_for(MT);
    // Splits of the tokens: about 4 blocks per SM when the columns alone give fewer (rounded down, as the
    // forward's), fp32 partial sums [splits, N, in].
    const Splits t = split_reduction(4 * int64_t(sm_count()) / c_tiles, T, kMinSplitTokens, BT, workspace,
                                     workspace_bytes, size_t(N * in * 4));
    splits = t.count;
    partial = splits > 1 ? static_cast<float*>(workspace) : nullptr;
    lora_da_dropout_kernel<MT><<<dim3(unsigned(c_tiles), unsigned(splits)), kBlock, 0, as_stream(stream)>>>(
        static_cast<const bf16*>(du), static_cast<const bf16*>(x), T, in, int(r), n, rng::keep_threshold16(p),
        1.0f / (1.0f - p), s, t.length, dA, partial);
  });
  QSFT_CUDA_CHECK_LAUNCH();
  if (!partial) return;
  add_partial_sums(partial, int(splits), N * in, 1.0f, dA, stream);  // dA += the splits' sums, in order
}

}  // namespace qsft::cuda
