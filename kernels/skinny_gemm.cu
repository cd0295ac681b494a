// C (+)= alpha U op(W) for a small K, and the LoRA input gradient through dropout masks (kernels/skinny_gemm_cuda.h).
// A block of 4 warps owns a [64, 64] tile of C. Its 128 threads first load their 16-byte words of C (thread x:
// words x + 128 i, i < 4, of the tile's 512 as row-major 8-column words: coalesced), all four in flight (zeros
// instead when C is only written: beta 0). Then per
// K segment (<= 64 columns of U, zero-padded to a multiple of 16): U's rows and W's columns of the tile into shared
// memory, each warp's [16, 64] product by mma.sync m16n8k16 into an fp32 tile in shared memory, and every thread adds
// its words of that tile (times alpha, or through member j's dropout mask when segment j is a LoRA member) to its
// C values. C is rounded and written once at the end. Bytes: C read and written once (2 x 2 bytes an element at
// bf16); U and W are re-read per tile from the L2 (K / 32 of C's bytes each).
#include <cstdlib>
#include <cstring>

#include "kernels/kernel_util_cuda.h"
#include "kernels/lora_dropout.h"
#include "kernels/mma_cuda.h"
#include "kernels/rng.h"
#include "kernels/skinny_gemm_cuda.h"

namespace qsft::cuda {
namespace {

constexpr int kBM = 64, kBN = 64;  // the C tile of a block
constexpr int kSegK = 64;          // K columns per segment
constexpr int kBlock = 128;        // 4 warps, 16 rows of the tile each
constexpr int kPitch = kSegK + 8;  // bf16 row pitch of the operand tiles (144 bytes: conflict-free fragment reads)
constexpr int kPPitch = kBN + 4;   // fp32 row pitch of the product tile
constexpr int kWords = kBM * kBN / 8 / kBlock;  // 16-byte words of C per thread (4)
constexpr int kMaxMembers = cpu::kLoraDropoutMaxMembers;

struct Args {
  const bf16* u;
  int64_t ldu;
  const bf16* w;
  int64_t ldw;
  bf16* c;
  int64_t ldc;
  int64_t M, N, K;
  float alpha;
  // masked (lora_dx_dropout): segment j = member j, K = n r, seg = r; dropout_j from seeds[j] at index t N + c
  int seg;       // K columns per segment: kSegK, or r when masked
  int segments;  // ceil(K / seg)
  uint32_t threshold;  // rng::keep_threshold16(p)
  float keep_scale;
  uint64_t mixed_seeds[kMaxMembers];  // rng::mix64(seeds[j])
};

// A block's shared memory: the operand tiles of a segment and its fp32 product.
struct Tiles {
  bf16 su[kBM][kPitch];    // U's rows of the tile, the segment's columns
  bf16 sw[kBN][kPitch];    // op(W)[k0 + k, n0 + n] at sw[n][k] (W [N, K]) or at sw[k][n] (W [K, N]; kSegK == kBN)
  float sp[kBM][kPPitch];  // the segment's product
};
static_assert(kSegK == kBN, "sw holds the segment as [n][k] or as [k][n]");

// Segment s's operands into shared memory as 16-byte words in their own layouts: su[m][k] = U[m0 + m, k0 + k], sw
// as Tiles says, for k < kw; zeros for kw <= k < kpad and past M or N (zero terms add nothing).
template <bool kWRows>
__device__ __forceinline__ void stage_segment(const Args& a, int64_t m0, int64_t n0, int64_t k0, int kw, int kpad,
                                              bf16 (&su)[kBM][kPitch], bf16 (&sw)[kBN][kPitch]) {
  const uint4 zero = make_uint4(0, 0, 0, 0);
  const int words = kpad / 8;  // per row of a [rows, kpad] tile
  for (int v = threadIdx.x; v < kBM * words; v += kBlock) {
    const int row = v / words, col = v % words * 8;
    const int64_t m = m0 + row;
    *reinterpret_cast<uint4*>(&su[row][col]) =
        m < a.M && col < kw ? *reinterpret_cast<const uint4*>(a.u + m * a.ldu + k0 + col) : zero;
  }
  if constexpr (kWRows) {  // W [N, K]: its row n is column n of op(W)
    for (int v = threadIdx.x; v < kBN * words; v += kBlock) {
      const int row = v / words, col = v % words * 8;
      const int64_t n = n0 + row;
      *reinterpret_cast<uint4*>(&sw[row][col]) =
          n < a.N && col < kw ? *reinterpret_cast<const uint4*>(a.w + n * a.ldw + k0 + col) : zero;
    }
  } else {  // W [K, N]: its row k0 + k is sw's row k (N % 8 == 0: a word is all in or all out)
    for (int v = threadIdx.x; v < kpad * (kBN / 8); v += kBlock) {
      const int k = v / (kBN / 8), col = v % (kBN / 8) * 8;
      const int64_t n = n0 + col;
      *reinterpret_cast<uint4*>(&sw[k][col]) =
          k < kw && n < a.N ? *reinterpret_cast<const uint4*>(a.w + (k0 + k) * a.ldw + n) : zero;
    }
  }
}

// Segment s's product U[m0.., k0..) op(W)[k0.., n0..) into t.sp by every thread of the block (its barriers
// included): each warp's 16 rows by mma.sync m16n8k16 over the 8 n8 tiles, k-steps of 16 up to the padded width,
// the fragments by ldmatrix (kernels/mma_cuda.h: W [N, K] as load_b_rows, W [K, N] as load_b_cols).
template <bool kWRows>
__device__ __forceinline__ void segment_product(const Args& a, int64_t m0, int64_t n0, int s, Tiles& t) {
  const int warp = threadIdx.x / 32, g = (threadIdx.x % 32) / 4, tig = threadIdx.x % 4;
  const int64_t k0 = int64_t(s) * a.seg;
  const int kw = int(min(int64_t(a.seg), a.K - k0)), kpad = (kw + 15) / 16 * 16;
  __syncthreads();  // the previous segment's tiles are read
  stage_segment<kWRows>(a, m0, n0, k0, kw, kpad, t.su, t.sw);
  __syncthreads();
  float acc[kBN / 8][4] = {};  // the warp's [16, 64]: n8 tile i
#pragma unroll
  for (int kk = 0; kk < kSegK; kk += 16) {
    if (kk >= kpad) break;
    uint32_t af[4];
    load_a(af, &t.su[warp * 16][kk], kPitch);
#pragma unroll
    for (int i = 0; i < kBN / 8; i += 2) {  // n8 tiles i and i + 1
      uint32_t b[4];
      if constexpr (kWRows)
        load_b_rows(b, &t.sw[8 * i][kk], kPitch);
      else
        load_b_cols(b, &t.sw[kk][8 * i], kPitch);
      mma_16816(acc[i], af, b[0], b[1]);
      mma_16816(acc[i + 1], af, b[2], b[3]);
    }
  }
  const int row = warp * 16 + g;
  // c0, c1: row g, columns 8 i + 2 tig and + 1; c2, c3: row g + 8
#pragma unroll
  for (int i = 0; i < kBN / 8; ++i) {
    *reinterpret_cast<float2*>(&t.sp[row][8 * i + 2 * tig]) = make_float2(acc[i][0], acc[i][1]);
    *reinterpret_cast<float2*>(&t.sp[row + 8][8 * i + 2 * tig]) = make_float2(acc[i][2], acc[i][3]);
  }
  __syncthreads();
}

// mixed_seeds[s] by constant indices (a run-time index would copy the parameters to local memory)
__device__ __forceinline__ uint64_t seed_of(const Args& a, int s) {
  uint64_t seed = a.mixed_seeds[0];
#pragma unroll
  for (int j = 1; j < kMaxMembers; ++j)
    if (s == j) seed = a.mixed_seeds[j];
  return seed;
}

// 5 blocks of 128 threads an SM (at most 96 registers; ptxas spills 8 bytes); the masked form 4 (its hashes: at 96
// registers ptxas spilled 28 bytes on sm_90, 124 on sm_80; none at 128).
template <bool kMasked>
constexpr int kMinBlocks = kMasked ? 4 : 5;
// kReadC: C += ...; else C = ... (C not read: beta 0).
template <bool kWRows, bool kMasked, bool kReadC>
__global__ void __launch_bounds__(kBlock, kMinBlocks<kMasked>) skinny_add_kernel(const Args a) {
  __shared__ __align__(16) Tiles t;
  const int tid = threadIdx.x;
  const int64_t m0 = int64_t(blockIdx.x) * kBM, n0 = int64_t(blockIdx.y) * kBN;
  // this thread's words of C: word x = tid + kBlock i at tile row x / 8, columns 8 (x % 8)
  auto word_row = [&](int i) { return (tid + kBlock * i) / (kBN / 8); };
  auto word_col = [&](int i) { return (tid + kBlock * i) % (kBN / 8) * 8; };
  auto inside = [&](int i) { return m0 + word_row(i) < a.M && n0 + word_col(i) < a.N; };
  uint4 raw[kWords];  // C's words, converted at the first segment's add: the loads issue back to back
#pragma unroll
  for (int i = 0; i < kWords; ++i)
    raw[i] = kReadC && inside(i) ? *reinterpret_cast<const uint4*>(a.c + (m0 + word_row(i)) * a.ldc + n0 + word_col(i))
                                 : make_uint4(0, 0, 0, 0);
  float cv[kWords][8];
  // cv (+)= segment s's product at this thread's words: times alpha, or through member s's dropout mask
  auto add_segment = [&](int s, auto first) {
    segment_product<kWRows>(a, m0, n0, s, t);
#pragma unroll
    for (int i = 0; i < kWords; ++i) {
      const float4 lo = *reinterpret_cast<const float4*>(&t.sp[word_row(i)][word_col(i)]);
      const float4 hi = *reinterpret_cast<const float4*>(&t.sp[word_row(i)][word_col(i) + 4]);
      const float prod[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
      if constexpr (decltype(first)::value) unpack_word<bf16>(raw[i], cv[i]);
      if constexpr (kMasked) {
        if (!inside(i)) continue;
        bool keep[8];  // the dropout masks of x's elements t in + c .. + 7 (a multiple of 8: two hashes)
        rng::keeps16<8>(seed_of(a, s), uint64_t((m0 + word_row(i)) * a.N + n0 + word_col(i)), a.threshold, keep);
#pragma unroll
        for (int j = 0; j < 8; ++j) cv[i][j] += dropout_value(prod[j], keep[j], a.keep_scale);
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) cv[i][j] += a.alpha * prod[j];
      }
    }
  };
  add_segment(0, std::true_type{});
  for (int s = 1; s < a.segments; ++s) add_segment(s, std::false_type{});
#pragma unroll
  for (int i = 0; i < kWords; ++i)
    if (inside(i)) store_n<8>(a.c + (m0 + word_row(i)) * a.ldc + n0 + word_col(i), cv[i]);
}

bool disabled() {
  const char* v = std::getenv("QSFT_SKINNY_GEMM");
  return v && std::strcmp(v, "0") == 0;
}

bool rows_ok(const void* p, int64_t ld) { return aligned16(p) && ld % 8 == 0; }

dim3 grid_of(const Args& a) { return dim3(unsigned((a.M + kBM - 1) / kBM), unsigned((a.N + kBN - 1) / kBN)); }

// N tiles on the grid's y, at most 65535 of them (M tiles on x: up to 2^31 - 1).
constexpr int64_t kMaxN = 65535 * kBN;

}  // namespace

bool skinny_add_fits(const GemmOperand& U, bool transU, const GemmOperand& W, bool transW, const GemmOperand& C,
                     float beta, const void* bias, const void* c_src) {
  const int64_t K = U.cols, N = C.cols;
  const bool bf16s = U.dtype == DType::BF16 && W.dtype == DType::BF16 && C.dtype == DType::BF16;
  const bool in_place = beta == 0.0f || (beta == 1.0f && (!c_src || c_src == C.data));
  return !disabled() && in_place && !bias && !transU && bf16s && K >= 8 && K <= kSkinnyMaxK && K % 8 == 0 &&
         N % 8 == 0 && N <= kMaxN && (transW ? W.rows : W.cols) == N && (transW ? W.cols : W.rows) == K &&
         C.rows == U.rows && rows_ok(U.data, U.ld) && rows_ok(W.data, W.ld) && rows_ok(C.data, C.ld);
}

void skinny_add(const GemmOperand& U, const GemmOperand& W, bool transW, const GemmOperand& C, float alpha, float beta,
                void* stream) {
  if (C.rows == 0 || C.cols == 0) return;
  Args a{};
  a.u = static_cast<const bf16*>(U.data);
  a.ldu = U.ld;
  a.w = static_cast<const bf16*>(W.data);
  a.ldw = W.ld;
  a.c = static_cast<bf16*>(C.data);
  a.ldc = C.ld;
  a.M = C.rows;
  a.N = C.cols;
  a.K = U.cols;
  a.alpha = alpha;
  a.seg = kSegK;
  a.segments = int((a.K + kSegK - 1) / kSegK);
  const cudaStream_t s = as_stream(stream);
  if (transW)
    (beta != 0.0f ? skinny_add_kernel<true, false, true>
                  : skinny_add_kernel<true, false, false>)<<<grid_of(a), kBlock, 0, s>>>(a);
  else
    (beta != 0.0f ? skinny_add_kernel<false, false, true>
                  : skinny_add_kernel<false, false, false>)<<<grid_of(a), kBlock, 0, s>>>(a);
  QSFT_CUDA_CHECK_LAUNCH();
}

bool lora_dx_dropout_fits(DType dt, int64_t in, int64_t r, int n, const void* du, const void* A, const void* dx) {
  return !disabled() && dt == DType::BF16 && r >= 8 && r <= kSegK && r % 8 == 0 && in % 8 == 0 && in <= kMaxN &&
         n >= 1 && n <= kMaxMembers && aligned16(du) && aligned16(A) && aligned16(dx);
}

void lora_dx_dropout(const void* du, const void* A, int64_t T, int64_t in, int64_t r, int n, float p,
                     const uint64_t* seeds, void* dx, int64_t ldx, bool accumulate, void* stream) {
  if (T == 0 || in == 0) return;
  QSFT_CHECK(ldx % 8 == 0, "lora_dx_dropout: dx rows not 16-byte aligned");
  Args a{};
  a.u = static_cast<const bf16*>(du);
  a.ldu = n * r;
  a.w = static_cast<const bf16*>(A);
  a.ldw = in;
  a.c = static_cast<bf16*>(dx);
  a.ldc = ldx;
  a.M = T;
  a.N = in;
  a.K = n * r;
  a.alpha = 1.0f;
  a.seg = int(r);
  a.segments = n;
  a.threshold = rng::keep_threshold16(p);
  a.keep_scale = 1.0f / (1.0f - p);
  for (int j = 0; j < n; ++j) a.mixed_seeds[j] = rng::mix64(seeds[j]);
  // A [n r, in]: W as [K, N]
  (accumulate ? skinny_add_kernel<false, true, true>
              : skinny_add_kernel<false, true, false>)<<<grid_of(a), kBlock, 0, as_stream(stream)>>>(a);
  QSFT_CUDA_CHECK_LAUNCH();
}

}  // namespace qsft::cuda
