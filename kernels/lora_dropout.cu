// The fused LoRA A projection with dropout (kernels/lora_dropout_cuda.h). A block computes u for 64 tokens and all
// n r columns over a range of K: per k-step of BK (64 for n r <= 96, else 32: the static shared memory) it stages
// the x tile [64, BK] once per member, masked and scaled exactly as the dropout kernel stores it (bf16), and the A
// tile [n r, BK], in shared memory (x scaled and rounded once, then and-ed with each member's mask: integer tests of
// the hash fields, rng::keep_threshold16); each of its 4 warps
// owns 16 rows and runs mma.sync m16n8k16 (bf16 in, fp32 accumulation) over every n8 column tile with the x tile of
// that tile's member. The next k-step's 16-byte global loads are issued before this step's mma's (register
// prefetch). ~2 n r FLOP per 2-byte element of x, plus n hashes per 4 elements for the masks: at n = 3 the hashes'
// integer work, not the bytes, bounds it.
#include <algorithm>

#include "kernels/lora_dropout_cuda.h"
#include "kernels/lora_dropout_mma_cuda.h"
#include "kernels/reduce_cuda.h"

namespace qsft::cuda {
namespace {

using namespace lora_mma;

constexpr int kBM = 64;                  // tokens per block: 4 warps x 16 rows
constexpr int64_t kMinSplitDepth = 128;  // a split of K covers at least 128 columns of x
// The depth of a k-step for NT n8 column tiles: 64 (4 mma k16 steps, 128 bytes of each x row) while the tiles fit
// 48 KiB of static shared memory, else 32.
constexpr int depth_for(int NT) { return NT <= 12 ? 64 : 32; }

// NT: n8 column tiles the block computes (8 NT >= N = n r; tiles past N stay zero). grid (ceil(T / kBM), splits);
// split s covers k in [s k_split, (s + 1) k_split). partial: null (one split: u written in bf16), else fp32
// [splits, T, N] summed by store_partial_sums (kernels/reduce_cuda.h).
template <int NT, int BK = depth_for(NT)>
__global__ void __launch_bounds__(kBlock)
    lora_a_dropout_kernel(const bf16* __restrict__ x, int64_t T, int64_t in, const bf16* __restrict__ A, int r, int n,
                          uint32_t threshold, float keep_scale, Seeds seeds, int64_t k_split, bf16* u, int64_t ldu,
                          float* partial) {
  constexpr int kPitch = BK + 8;       // shared row pitch in bf16 (80 or 144 bytes): the fragment reads hit 32 banks
  constexpr int kVecsPerRow = BK / 8;  // 16-byte vectors in a tile row
  constexpr int kVecsX = kBM * kVecsPerRow / kBlock;                    // x vectors per thread per k-step
  constexpr int kVecsA = (8 * NT * kVecsPerRow + kBlock - 1) / kBlock;  // A vectors per thread per k-step
  __shared__ __align__(16) bf16 xs[kMembers][kBM][kPitch];
  __shared__ __align__(16) bf16 as[8 * NT][kPitch];
  const int tid = threadIdx.x, warp = tid / 32, g = (tid % 32) / 4, tig = tid % 4;
  const int N = n * r;
  const int64_t t0 = int64_t(blockIdx.x) * kBM;
  const int64_t k_begin = int64_t(blockIdx.y) * k_split, k_end = min(in, k_begin + k_split);
  int member_of[NT];  // the member whose columns n8 tile i holds (r is a multiple of 8); kMembers: past N
#pragma unroll
  for (int i = 0; i < NT; ++i) member_of[i] = 8 * i < N ? 8 * i / r : kMembers;

  uint4 xr[kVecsX], ar[kVecsA];
  const uint4 zero = make_uint4(0, 0, 0, 0);
  auto load = [&](int64_t k0) {  // the k-step at k0 into registers: zeros past T, k_end and N
#pragma unroll
    for (int v = 0; v < kVecsX; ++v) {
      const int idx = tid + v * kBlock;
      const int64_t t = t0 + idx / kVecsPerRow, c = k0 + (idx % kVecsPerRow) * 8;
      xr[v] = t < T && c < k_end ? *reinterpret_cast<const uint4*>(x + t * in + c) : zero;
    }
#pragma unroll
    for (int v = 0; v < kVecsA; ++v) {
      const int idx = tid + v * kBlock, row = idx / kVecsPerRow;
      const int64_t c = k0 + (idx % kVecsPerRow) * 8;
      ar[v] = row < N && c < k_end ? *reinterpret_cast<const uint4*>(A + int64_t(row) * in + c) : zero;
    }
  };
  auto stage = [&](int64_t k0) {  // the registers into shared memory: x once per member, dropped out
#pragma unroll
    for (int v = 0; v < kVecsX; ++v) {
      const int idx = tid + v * kBlock, row = idx / kVecsPerRow, col = (idx % kVecsPerRow) * 8;
      const int64_t t = t0 + row, c = k0 + col;
      const bool inside = t < T && c < k_end;
      const uint4 kept = kept_values(xr[v], keep_scale);  // scaled and rounded once for all members
#pragma unroll
      for (int j = 0; j < kMembers; ++j)
        if (j < n)
          *reinterpret_cast<uint4*>(&xs[j][row][col]) =
              inside ? dropped(kept, seeds.s[j], uint64_t(t * in + c), threshold) : zero;
    }
#pragma unroll
    for (int v = 0; v < kVecsA; ++v) {
      const int idx = tid + v * kBlock, row = idx / kVecsPerRow;
      if (row < 8 * NT) *reinterpret_cast<uint4*>(&as[row][(idx % kVecsPerRow) * 8]) = ar[v];
    }
  };

  float acc[NT][4] = {};
  load(k_begin);
  for (int64_t k0 = k_begin; k0 < k_end; k0 += BK) {
    __syncthreads();  // every warp is done with the previous k-step's tiles
    stage(k0);
    __syncthreads();
    if (k0 + BK < k_end) load(k0 + BK);
    const int row = warp * 16 + g;
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      const int col = kk + 2 * tig;
#pragma unroll
      for (int j = 0; j < kMembers; ++j) {
        if (j >= n) break;
        const uint32_t a[4] = {word_at(&xs[j][row][col]), word_at(&xs[j][row + 8][col]), word_at(&xs[j][row][col + 8]),
                               word_at(&xs[j][row + 8][col + 8])};
#pragma unroll
        for (int i = 0; i < NT; ++i)
          if (member_of[i] == j) mma_16816(acc[i], a, word_at(&as[8 * i + g][col]), word_at(&as[8 * i + g][col + 8]));
      }
    }
  }
  // c[2h], c[2h + 1]: row g + 8 h, columns 8 i + 2 tig and + 1 of the warp's [16, 8] tile i
#pragma unroll
  for (int i = 0; i < NT; ++i) {
    const int col = 8 * i + 2 * tig;
    if (col >= N) continue;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t t = t0 + warp * 16 + g + 8 * h;
      if (t >= T) continue;
      if (partial) {
        *reinterpret_cast<float2*>(partial + (int64_t(blockIdx.y) * T + t) * N + col) =
            make_float2(acc[i][2 * h], acc[i][2 * h + 1]);
      } else {
        u[t * ldu + col] = __float2bfloat16_rn(acc[i][2 * h]);
        u[t * ldu + col + 1] = __float2bfloat16_rn(acc[i][2 * h + 1]);
      }
    }
  }
}

}  // namespace

bool lora_a_dropout_fits(DType dt, int64_t in, int64_t r, int n, const void* x, const void* A) {
  return stack_fits(dt, in, r, n, x, A);
}

void lora_a_dropout(const void* x, int64_t T, int64_t in, const void* A, int64_t r, int n, float p,
                    const uint64_t* seeds, void* u, int64_t ldu, void* workspace, size_t workspace_bytes,
                    void* stream) {
  if (T == 0) return;
  QSFT_CHECK(lora_a_dropout_fits(DType::BF16, in, r, n, x, A), "lora_a_dropout: shapes the kernel does not take");
  const int64_t N = n * r, m_tiles = ceil_div(T, kBM);
  Seeds s{};
  for (int j = 0; j < n; ++j) s.s[j] = rng::mix64(seeds[j]);
  int64_t splits = 1;
  dispatch_tiles<kMaxRows / 8>(N / 8, [&](auto w) {
    constexpr int NT = decltype(w)::value, BK = depth_for(NT);
    // Splits of K: about 4 blocks per SM when T alone gives fewer (rounded down: a nearly full GPU does not split,
    // each split costs its fp32 partials' write and read), fp32 partial sums [splits, T, N].
    const Splits k = split_reduction(4 * int64_t(sm_count()) / m_tiles, in, kMinSplitDepth, BK, workspace,
                                     workspace_bytes, size_t(T * N * 4));
    splits = k.count;
    lora_a_dropout_kernel<NT><<<dim3(unsigned(m_tiles), unsigned(splits)), kBlock, 0, as_stream(stream)>>>(
        static_cast<const bf16*>(x), T, in, static_cast<const bf16*>(A), int(r), n, rng::keep_threshold16(p),
        1.0f / (1.0f - p), s, k.length, static_cast<bf16*>(u), ldu,
        splits > 1 ? static_cast<float*>(workspace) : nullptr);
  });
  QSFT_CUDA_CHECK_LAUNCH();
  if (splits == 1) return;
  // u[t, c] = sum over splits of the partials, in order, rounded once to bf16
  store_partial_sums(static_cast<const float*>(workspace), int(splits), T, N, 1.0f, u, ldu, stream);
}

}  // namespace qsft::cuda
