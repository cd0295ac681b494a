// LoRA's B and u gradients from one read of dy (kernels/lora_db_du_cuda.h), for one member of rank 16:
//   dB += s dy^T u   [out, 16] fp32          du = s dy B   [T, 16]
// Both products need all of dy [T, out]: bytes, not FLOPs, bound them (4 FLOP per 2-byte element of dy each).
// A block takes a range of outputs x a range of kRangeT tokens of dy in [64 x 64] tiles, outputs outer, tokens
// inner. Per tile each warp adds (mma.sync m16n8k16, bf16 in, fp32 accumulation):
//   - to the dB rows of 16 of the tile's outputs, kept in registers over the token range: A = dy^T (ldmatrix.trans
//     of the tile), B = u's rows;
//   - to the du rows of 16 of the tile's tokens: A = dy, B = B's rows of the tile's outputs; the result goes to an
//     fp32 shared accumulator of the whole token range, each element owned by one thread (no atomics) and laid out
//     by owner: slot q of thread x at q 128 + x (conflict-free).
// Both ranges split over blocks: the fp32 partial sums ([token ranges, out, 16] for dB, [output ranges, T, 16] for
// du) are reduced in a fixed order (kernels/reduce_cuda.h), so the result is deterministic (for a given SM count and
// scratch size). Extra bytes: the partials, written and read once, 2 x 16 x 4 (1 / kRangeT + 1 / range_out) per
// element of dy: ~20% of dy's bytes at gate/up (7B, T 16384), ~40% at q/o.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "kernels/kernel_util_cuda.h"
#include "kernels/lora_db_du_cuda.h"
#include "kernels/mma_cuda.h"
#include "kernels/reduce_cuda.h"

namespace qsft::cuda {
namespace {

constexpr int kR = 16;             // the rank the kernel takes
constexpr int kTile = 64;          // tokens and outputs of a tile
constexpr int kBlock = 128;        // 4 warps
constexpr int kPitch = kTile + 8;  // bf16 pitch of the dy tile: 144 bytes, ldmatrix rows on distinct banks
constexpr int kRPitch = kR + 8;    // bf16 pitch of the u and B tiles: 48 bytes, likewise
constexpr int kRangeT = 384;       // tokens a block covers: its du accumulator, 384 x 16 fp32, is 24 KiB
constexpr int kSlots = kTile * kR / kBlock;  // accumulator elements a thread owns per token tile (8)
static_assert(kSlots == 4 * (kR / 8), "a warp's m16 x kR fragment: 4 elements per n8 tile and thread");
constexpr int kMinRangeOut = 256;  // outputs a block covers at least (bounds du's partials)

struct Args {
  const bf16* dy;
  int64_t ldy;
  const bf16* u;
  int64_t ldu;
  const bf16* B;  // [out, 16] packed
  int64_t T, out, range_out;
  float s;
  float* dB;          // [out, 16] packed, accumulated when partial_db is null
  float* partial_db;  // [token ranges, out, 16] or null
  bf16* du;           // written when partial_du is null
  int64_t lddu;
  float* partial_du;  // [output ranges, T, 16] or null
};

// A [64, kCols] tile of a row-major bf16 matrix (row stride ld) as this thread's 16-byte words (word v: thread
// tid + kBlock v, row-major over the tile's words): zeros past rows_in rows and cols_in columns (a multiple of 8).
template <int kCols>
struct TileWords {
  static constexpr int kWordsPerRow = kCols / 8, kCount = kTile * kWordsPerRow / kBlock;
  uint4 w[kCount];
  __device__ __forceinline__ void load(const bf16* src, int64_t ld, int64_t rows_in, int64_t cols_in) {
#pragma unroll
    for (int v = 0; v < kCount; ++v) {
      const int idx = threadIdx.x + kBlock * v, row = idx / kWordsPerRow, col = idx % kWordsPerRow * 8;
      w[v] = row < rows_in && col < cols_in ? *reinterpret_cast<const uint4*>(src + row * ld + col)
                                            : make_uint4(0, 0, 0, 0);
    }
  }
  template <int kTilePitch>
  __device__ __forceinline__ void store(bf16 (&tile)[kTile][kTilePitch]) const {
#pragma unroll
    for (int v = 0; v < kCount; ++v) {
      const int idx = threadIdx.x + kBlock * v;
      *reinterpret_cast<uint4*>(&tile[idx / kWordsPerRow][idx % kWordsPerRow * 8]) = w[v];
    }
  }
};

// grid (output ranges, token ranges); dynamic shared memory: the du accumulator, fp32, kRangeT x kR elements (thread
// x's element e of token tile j at (j kSlots + e) kBlock + x; e = 4 i + 2 h + k for acc[i][2 h + k]). The block walks
// its tiles as steps, outputs outer: step q is output tile q / t_tiles, token tile q % t_tiles; the next step's
// words are loaded into registers before this step's mma's; B's fragments stay in registers over an output tile.
// 5 blocks an SM, as many as its shared memory holds (40 KiB each): 96 registers, no spills on sm_90 (125 unbounded).
__global__ void __launch_bounds__(kBlock, 5) lora_db_du_kernel(const Args a) {
  __shared__ __align__(16) bf16 dys[kTile][kPitch];  // dy [tokens, outputs] of the tile
  __shared__ __align__(16) bf16 us[kTile][kRPitch];  // u [tokens, r]
  __shared__ __align__(16) bf16 bs[kTile][kRPitch];  // B [outputs, r]
  extern __shared__ float du_acc[];                  // kRangeT x kR, by owner
  const int tid = threadIdx.x, warp = tid / 32, g = (tid % 32) / 4, tig = tid % 4;
  const int64_t o_begin = int64_t(blockIdx.x) * a.range_out, o_end = min(a.out, o_begin + a.range_out);
  const int64_t t_begin = int64_t(blockIdx.y) * kRangeT, t_end = min(a.T, t_begin + kRangeT);
  const int t_tiles = int((t_end - t_begin + kTile - 1) / kTile);
  const int steps = t_tiles * int((o_end - o_begin + kTile - 1) / kTile);
  for (int i = tid; i < kRangeT * kR; i += kBlock) du_acc[i] = 0.0f;
  // A thread's fragment elements: acc[i][2 h + k] at row 16 warp + g + 8 h, column 8 i + 2 tig + k of a tile.
  auto frag_row = [&](int h) { return 16 * warp + g + 8 * h; };
  auto frag_col = [&](int i, int k) { return 8 * i + 2 * tig + k; };
  auto slot = [&](int64_t t0, int i, int h, int k) {  // this thread's accumulator element for acc[i][2 h + k]
    return (int((t0 - t_begin) / kTile) * kSlots + 4 * i + 2 * h + k) * kBlock + tid;
  };

  TileWords<kTile> ry;
  TileWords<kR> ru, rb;
  auto load = [&](int q) {  // step q's tiles of dy, u and B into registers
    const int64_t o0 = o_begin + int64_t(q / t_tiles) * kTile, t0 = t_begin + int64_t(q % t_tiles) * kTile;
    ry.load(a.dy + t0 * a.ldy + o0, a.ldy, t_end - t0, o_end - o0);
    ru.load(a.u + t0 * a.ldu, a.ldu, t_end - t0, kR);
    if (q % t_tiles == 0) rb.load(a.B + o0 * kR, kR, o_end - o0, kR);  // stored at an output tile's first step
  };
  float db[kR / 8][4] = {};  // dB rows of this warp's 16 outputs of the output tile, over the token range
  uint32_t bfrag[kTile / 16][4];  // the output tile's B as mma B fragments, loaded at its first token tile
  load(0);
  for (int q = 0; q < steps; ++q) {
    const int64_t o0 = o_begin + int64_t(q / t_tiles) * kTile, t0 = t_begin + int64_t(q % t_tiles) * kTile;
    __syncthreads();  // every warp is done with the previous tiles (and the accumulator's zeros are in place)
    ry.store(dys);
    ru.store(us);
    if (q % t_tiles == 0) rb.store(bs);
    __syncthreads();
    if (q + 1 < steps) load(q + 1);
    if (q % t_tiles == 0) {
#pragma unroll
      for (int kk = 0; kk < kTile; kk += 16) load_b_cols(bfrag[kk / 16], &bs[kk][0], kRPitch);  // B: outputs kk.. x 16
    }
    float du[kR / 8][4] = {};  // du rows of this warp's 16 tokens of the tile, from the tile's outputs
#pragma unroll
    for (int kk = 0; kk < kTile; kk += 16) {
      uint32_t at[4], ad[4], b[4];
      load_a_trans(at, &dys[kk][16 * warp], kPitch);  // dy^T: the warp's 16 outputs x tokens kk..
      load_b_cols(b, &us[kk][0], kRPitch);            // u: tokens kk.. x 16
      mma_16816(db[0], at, b[0], b[1]);
      mma_16816(db[1], at, b[2], b[3]);
      load_a(ad, &dys[16 * warp][kk], kPitch);  // dy: the warp's 16 tokens x outputs kk..
      const uint32_t(&bb)[4] = bfrag[kk / 16];
      mma_16816(du[0], ad, bb[0], bb[1]);
      mma_16816(du[1], ad, bb[2], bb[3]);
    }
#pragma unroll
    for (int i = 0; i < kR / 8; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int k = 0; k < 2; ++k) du_acc[slot(t0, i, h, k)] += du[i][2 * h + k];
    if (q % t_tiles != t_tiles - 1) continue;
      // the output tile's last token tile: its dB rows are complete over the token range
#pragma unroll
    for (int i = 0; i < kR / 8; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t o = o0 + frag_row(h);
        const int c = frag_col(i, 0);
        if (o < o_end && a.partial_db) {
          *reinterpret_cast<float2*>(a.partial_db + (int64_t(blockIdx.y) * a.out + o) * kR + c) =
              make_float2(db[i][2 * h], db[i][2 * h + 1]);
        } else if (o < o_end) {
          a.dB[o * kR + c] += a.s * db[i][2 * h];
          a.dB[o * kR + c + 1] += a.s * db[i][2 * h + 1];
        }
        db[i][2 * h] = db[i][2 * h + 1] = 0.0f;
      }
  }
  // du: each thread writes the accumulator elements it owns (no barrier: no other thread touched them)
  for (int64_t t0 = t_begin; t0 < t_end; t0 += kTile)
#pragma unroll
    for (int i = 0; i < kR / 8; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t t = t0 + frag_row(h);
        if (t >= t_end) continue;
        const int c = frag_col(i, 0);
        const float v0 = du_acc[slot(t0, i, h, 0)], v1 = du_acc[slot(t0, i, h, 1)];
        if (a.partial_du) {
          *reinterpret_cast<float2*>(a.partial_du + (int64_t(blockIdx.x) * a.T + t) * kR + c) = make_float2(v0, v1);
        } else {
          a.du[t * a.lddu + c] = __float2bfloat16_rn(a.s * v0);
          a.du[t * a.lddu + c + 1] = __float2bfloat16_rn(a.s * v1);
        }
      }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// QSFT_LORA_DB_DU=0: the two GEMMs instead (read at every call, so tests and benches can switch it).
bool disabled() {
  const char* v = std::getenv("QSFT_LORA_DB_DU");
  return v && std::strcmp(v, "0") == 0;
}

}  // namespace

bool lora_db_du_fits(DType dt, int64_t out, int64_t r, const void* dy, int64_t ldy, const void* u, int64_t ldu,
                     const void* B, const void* du, int64_t lddu) {
  return !disabled() && dt == DType::BF16 && r == kR && out > 0 && out % 8 == 0 && ldy % 8 == 0 && ldu % 8 == 0 &&
         lddu % 8 == 0 && aligned16(dy) && aligned16(u) && aligned16(B) && aligned16(du);
}

bool lora_db_du(const void* dy, int64_t ldy, const void* u, int64_t ldu, const void* B, int64_t T, int64_t out,
                int64_t r, float s, float* dB, void* du, int64_t lddu, void* workspace, size_t workspace_bytes,
                void* stream) {
  QSFT_CHECK(r == kR, "lora_db_du: rank " + std::to_string(r) + ", the kernel takes 16");
  if (T == 0) return true;  // du is empty, dB += 0
  // Token ranges of kRangeT; output ranges (whole tiles, >= kMinRangeOut outputs unless out is smaller) for about
  // 4 blocks per SM in all, as many as the workspace holds the partial sums of (dB's first).
  const int64_t t_ranges = ceil_div(T, kRangeT), out_tiles = ceil_div(out, kTile);
  const size_t db_bytes = t_ranges > 1 ? size_t(t_ranges * out * kR * 4) : 0, du_bytes = size_t(T * kR * 4);
  if (!aligned16(workspace)) workspace_bytes = 0;
  if (db_bytes > workspace_bytes) return false;
  int64_t o_ranges = std::min(4 * int64_t(sm_count()) / t_ranges, std::max<int64_t>(1, out / kMinRangeOut));
  o_ranges = std::max<int64_t>(1, std::min(o_ranges, int64_t((workspace_bytes - db_bytes) / du_bytes)));
  const int64_t range_out = ceil_div(out_tiles, o_ranges) * kTile;
  o_ranges = ceil_div(out, range_out);
  Args a{};
  a.dy = static_cast<const bf16*>(dy);
  a.ldy = ldy;
  a.u = static_cast<const bf16*>(u);
  a.ldu = ldu;
  a.B = static_cast<const bf16*>(B);
  a.T = T;
  a.out = out;
  a.range_out = range_out;
  a.s = s;
  a.dB = dB;
  a.du = static_cast<bf16*>(du);
  a.lddu = lddu;
  char* next = static_cast<char*>(workspace);
  if (t_ranges > 1) {
    a.partial_db = reinterpret_cast<float*>(next);
    next += size_t(t_ranges * out * kR * 4);
  }
  if (o_ranges > 1) a.partial_du = reinterpret_cast<float*>(next);
  const size_t smem = size_t(kRangeT) * kR * sizeof(float);
  lora_db_du_kernel<<<dim3(unsigned(o_ranges), unsigned(t_ranges)), kBlock, smem, as_stream(stream)>>>(a);
  QSFT_CUDA_CHECK_LAUNCH();
  if (a.partial_db) add_partial_sums(a.partial_db, int(t_ranges), out * kR, s, dB, stream);       // dB += s sum
  if (a.partial_du) store_partial_sums(a.partial_du, int(o_ranges), T, kR, s, du, lddu, stream);  // du = s sum
  return true;
}

}  // namespace qsft::cuda
