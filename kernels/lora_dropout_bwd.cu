// The LoRA A gradients with dropout (kernels/lora_dropout_cuda.h): [dA_1; ...; dA_n] += [du_j^T dropout_j(x)].
// A block takes 64 columns of x and all n r rows of dA over a range of tokens: per k-step of 32 tokens it stages the
// du tile [32, n r] and each member's dropout of the x tile [32, 64] (exactly the dropout kernel's bf16 values),
// both transposed in shared memory so that the mma fragments pair consecutive tokens; each of the 4 warps owns two
// n8 column tiles of every m16 row tile (member j's rows [j r, (j + 1) r), r a multiple of 16) and runs mma.sync
// m16n8k16 (bf16 in, fp32 accumulation). Tokens are split over blocks when the columns alone give fewer than ~4
// blocks per SM; the fp32 partial sums are then added to dA in a fixed order (deterministic).
#include <algorithm>

#include "kernels/lora_dropout_cuda.h"
#include "kernels/lora_dropout_mma_cuda.h"

namespace qsft::cuda {
namespace {

using namespace lora_mma;

constexpr int kBT = 32;              // tokens per k-step: two mma k16 steps
constexpr int kBC = 64;              // columns of x (of dA) per block: 4 warps x 2 n8 tiles
constexpr int kPitch = kBT + 8;      // shared row pitch in bf16: 80 bytes, the fragment reads hit 32 banks
constexpr int64_t kMinSplitTokens = 128;

// MT: m16 row tiles (16 MT >= N = n r; rows past N stay zero). grid (ceil(in / kBC), splits); split s covers tokens
// [s t_split, (s + 1) t_split). partial: null (one split: added to dA), else fp32 [splits, N, in].
template <int MT>
__global__ void __launch_bounds__(kBlock) lora_da_dropout_kernel(const bf16* __restrict__ du,
                                                                 const bf16* __restrict__ x, int64_t T, int64_t in,
                                                                 int r, int n, float p, Seeds seeds, int64_t t_split,
                                                                 float* dA, float* partial) {
  constexpr int kVecsPerX = kBC / 8, kVecsPerU = 2 * MT;                 // 16-byte vectors in a tile row
  constexpr int kVecsX = kBT * kVecsPerX / kBlock;                       // x vectors per thread per k-step
  constexpr int kVecsU = (kBT * kVecsPerU + kBlock - 1) / kBlock;        // du vectors per thread per k-step
  __shared__ __align__(16) bf16 dut[16 * MT][kPitch];                    // du^T [rows of dA, tokens]
  __shared__ __align__(16) bf16 xdt[kMembers][kBC][kPitch];              // dropout_j(x)^T [columns, tokens]
  const int tid = threadIdx.x, warp = tid / 32, g = (tid % 32) / 4, tig = tid % 4;
  const int N = n * r;
  const int64_t c0 = int64_t(blockIdx.x) * kBC;
  const int64_t t_begin = int64_t(blockIdx.y) * t_split, t_end = min(T, t_begin + t_split);
  const float keep_scale = 1.0f / (1.0f - p);
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
      ur[v] = idx < kBT * kVecsPerU && t < t_end && m < N ? *reinterpret_cast<const uint4*>(du + t * N + m) : zero;
    }
  };
  auto stage = [&](int64_t t0) {  // the registers into shared memory, transposed; x once per member, dropped out
#pragma unroll
    for (int v = 0; v < kVecsX; ++v) {
      const int idx = tid + v * kBlock, tt = idx / kVecsPerX, col = (idx % kVecsPerX) * 8;
      const int64_t t = t0 + tt, c = c0 + col;
      const bool inside = t < t_end && c < in;
#pragma unroll
      for (int j = 0; j < kMembers; ++j) {
        if (j >= n) break;
        const uint4 d = inside ? dropped(xr[v], seeds.s[j], uint64_t(t * in + c), p, keep_scale) : zero;
        const bf16* e = reinterpret_cast<const bf16*>(&d);
#pragma unroll
        for (int q = 0; q < 8; ++q) xdt[j][col + q][tt] = e[q];
      }
    }
#pragma unroll
    for (int v = 0; v < kVecsU; ++v) {
      const int idx = tid + v * kBlock;
      if (idx >= kBT * kVecsPerU) continue;
      const int tt = idx / kVecsPerU, m = (idx % kVecsPerU) * 8;
      const bf16* e = reinterpret_cast<const bf16*>(&ur[v]);
#pragma unroll
      for (int q = 0; q < 8; ++q) dut[m + q][tt] = e[q];
    }
  };

  float acc[MT][2][4] = {};
  load(t_begin);
  for (int64_t t0 = t_begin; t0 < t_end; t0 += kBT) {
    __syncthreads();  // every warp is done with the previous k-step's tiles
    stage(t0);
    __syncthreads();
    if (t0 + kBT < t_end) load(t0 + kBT);
#pragma unroll
    for (int kk = 0; kk < kBT; kk += 16) {
      const int col = kk + 2 * tig;
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        const int j = member_of[i];
        if (j >= n) continue;
        const int m = 16 * i + g;
        const uint32_t a[4] = {word_at(&dut[m][col]), word_at(&dut[m + 8][col]), word_at(&dut[m][col + 8]),
                               word_at(&dut[m + 8][col + 8])};
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int c = 8 * (2 * warp + h) + g;
          mma_bf16(acc[i][h], a, word_at(&xdt[j][c][col]), word_at(&xdt[j][c][col + 8]));
        }
      }
    }
  }
  // acc[i][h][2 e + k]: row 16 i + g + 8 e of dA, column c0 + 8 (2 warp + h) + 2 tig + k
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t c = c0 + 8 * (2 * warp + h) + 2 * tig;  // even, and in is a multiple of 8: c + 1 < in too
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

// dA[e] += sum over splits s in order of partial[s, e].
__global__ void add_splits_kernel(const float* partial, int splits, int64_t count, float* dA) {
  QSFT_GRID_STRIDE(e, count) {
    float s = 0.0f;
    for (int k = 0; k < splits; ++k) s += partial[int64_t(k) * count + e];
    dA[e] += s;
  }
}

}  // namespace

bool lora_da_dropout_fits(DType dt, int64_t in, int64_t r, int n, const void* x, const void* du) {
  return stack_fits(dt, in, r, n, 16, x, du);
}

void lora_da_dropout(const void* du, const void* x, int64_t T, int64_t in, int64_t r, int n, float p,
                     const uint64_t* seeds, float* dA, void* workspace, size_t workspace_bytes, void* stream) {
  if (T == 0) return;
  QSFT_CHECK(lora_da_dropout_fits(DType::BF16, in, r, n, x, du), "lora_da_dropout: shapes the kernel does not take");
  const int64_t N = n * r, c_tiles = ceil_div(in, kBC);
  Seeds s{};
  for (int j = 0; j < n; ++j) s.s[j] = seeds[j];
  // Splits of the tokens: about 4 blocks per SM when the columns alone give fewer, each split >= kMinSplitTokens
  // and a whole number of k-steps, their fp32 partial sums [splits, N, in] within the workspace.
  int64_t splits = std::min(ceil_div(4 * int64_t(sm_count()), c_tiles), T / kMinSplitTokens);
  if (!aligned16(workspace)) splits = 1;
  splits = std::max<int64_t>(1, std::min<int64_t>(splits, int64_t(workspace_bytes / size_t(N * in * 4))));
  const int64_t t_split = ceil_div(ceil_div(T, kBT), splits) * kBT;
  splits = ceil_div(T, t_split);
  float* partial = splits > 1 ? static_cast<float*>(workspace) : nullptr;
  dispatch_tiles<kMaxRows / 16>(N / 16, [&](auto w) {
    constexpr int MT = decltype(w)::value;
    lora_da_dropout_kernel<MT><<<dim3(unsigned(c_tiles), unsigned(splits)), kBlock, 0, as_stream(stream)>>>(
        static_cast<const bf16*>(du), static_cast<const bf16*>(x), T, in, int(r), n, p, s, t_split, dA, partial);
  });
  QSFT_CUDA_CHECK_LAUNCH();
  if (!partial) return;
  add_splits_kernel<<<grid_for(N * in), kThreads, 0, as_stream(stream)>>>(partial, int(splits), N * in, dA);
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
