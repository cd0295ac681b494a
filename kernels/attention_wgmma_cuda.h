// Hopper (sm_90a) warpgroup MMA building blocks for the attention kernels: the shared-memory matrix descriptor, the
// 128-byte-swizzled tile layout it describes (what cp.async writes), wgmma.mma_async m64nNk16 f32 += bf16 x bf16
// with A from shared memory (SS) or from registers (RS), and the fences/groups around it. Section names are those
// of the PTX ISA 8.x chapter "Asynchronous Warpgroup Level Matrix Multiply-Accumulate Instructions" (9.7.15 in
// ISA 8.5). bench/gpu_wgmma_probe.cpp checks every piece against a CPU product on the GPU.
// Compiled only for sm_90a (attention_wgmma*.cu, kernels/dev/attention/*_sm90a.cu: kernels/CMakeLists.txt); elsewhere
// every instruction here traps.
// CUDA code: include from .cu files only.
//
// Shapes (PTX ISA "Matrix Shape", "Register Fragments and Shared Memory Matrix Layouts"): one wgmma computes
// D [64 x N] (+)= A [64 x 16] B [16 x N] for the 128 threads (4 warps) of a warpgroup, N a multiple of 8 (we
// instantiate 64 and 128). Lane = 4 grp + tig (grp = lane / 4, tig = lane % 4); warp w = warp index % 4.
//   D (f32, N / 2 registers, held here as d[N / 8][4]): warp w owns rows 16 w .. 16 w + 15, and per n8 column block
//     j exactly mma.sync m16n8's C fragment (attention_mma_cuda.h): d[j][0], d[j][1] = (row 16 w + grp, columns
//     8 j + 2 tig, +1), d[j][2], d[j][3] = (row 16 w + grp + 8, same columns).   Flat index i = 4 j + e:
//     row = 16 w + grp + 8 (e / 2), column = 8 (i / 4) + 2 tig + e % 2.
//   A from registers (RS, 4 .b32 registers of two bf16, low half = lower column): warp w rows 16 w .. 16 w + 15,
//     exactly mma.sync m16n8k16's A fragment: a0 = (row grp, cols 2 tig, +1), a1 = (row grp + 8, same cols),
//     a2 = (row grp, cols 2 tig + 8, +9), a3 = (row grp + 8, cols 2 tig + 8, +9).
//   So an accumulator D [64 x 16 K] turns into the RS A operand of a product over those K columns in registers,
//   FlashAttention-2's trick: k-step kk = to_a(a, d, kk) = {pack(d[2kk][0], d[2kk][1]), pack(d[2kk][2],
//   d[2kk][3]), pack(d[2kk+1][0], d[2kk+1][1]), pack(d[2kk+1][2], d[2kk+1][3])} (attention_mma_cuda.h's to_a).
//   Row statistics of a row live in the 4 lanes of one grp (quad_max / quad_sum), as with mma.sync.
//
// Shared-memory operands: the Sw128 layout below, read K-major (the operand's rows are M or N, 16 K columns
// contiguous: Q, K for S = Q K^T; imm-trans 0) or MN-major (the operand's rows are K, M or N contiguous: V for
// O = P V; imm-trans 1). One tile format serves both, so Q, K, V (and dO in the backward) are all loaded the same way.
#pragma once
#include <cstdint>

#include "kernels/attention_mma_cuda.h"

namespace qsft::cuda::wg {

using cuda::bf16;

// A bf16 matrix X [kRows][cols] (cols a multiple of 64, kRows a multiple of 8) in shared memory, PTX ISA "Shared
// Memory Matrix Layout" with 128-byte swizzling: cols / 64 column blocks of [kRows][64] one after the other
// (block b at b * kRows * 128 bytes); in a block, row r is 128 bytes at r * 128, so 8 rows make one 1024-byte
// swizzle atom, and the 16-byte chunk c (columns 8c .. 8c + 7) of row r sits at chunk position c ^ (r % 8). The
// hardware applies that XOR to the absolute shared address (bits [4:6] ^= bits [7:9]), so the tile base must be
// 1024-byte aligned (then the descriptor's base offset, bits 49-51, is 0).
template <int kRows>
struct Sw128 {
  static_assert(kRows % 8 == 0, "whole swizzle atoms");
  static constexpr uint32_t kAtomBytes = 1024, kBlockBytes = uint32_t(kRows) * 128;  // 8 rows; one 64-column block
  static constexpr uint32_t bytes(int cols) { return uint32_t(cols / 64) * kBlockBytes; }
  // Byte offset of element (row, col) from the tile base.
  __host__ __device__ static constexpr uint32_t offset(int row, int col) {
    return uint32_t(col / 64) * kBlockBytes + uint32_t(row) * 128 + uint32_t(((col % 64) / 8) ^ (row % 8)) * 16 +
           uint32_t(col % 8) * 2;
  }
};

// PTX ISA "Matrix Descriptor Format" (wgmma): bits 0-13 start address >> 4, 16-29 leading dimension byte offset
// (LBO) >> 4, 32-45 stride dimension byte offset (SBO) >> 4, 49-51 base offset (0: 1024-aligned atoms), 62-63
// swizzle mode (1 = 128-byte).
__host__ __device__ constexpr uint64_t sw128_desc(uint32_t start, uint32_t lbo, uint32_t sbo) {
  return uint64_t((start & 0x3FFFFu) >> 4) | uint64_t((lbo >> 4) & 0x3FFFu) << 16 |
         uint64_t((sbo >> 4) & 0x3FFFu) << 32 | uint64_t(1) << 62;
}

// K-major operand (A [64 x 16] or B^T [N x 16]: the operand's rows are X's rows row0 .., its 16 K columns X's columns
// k0 .. k0 + 15) of a Sw128<kRows> tile at shared address `base`. The canonical K-major SW128 layout: rows 128 bytes
// apart inside an atom, SBO = 1024 bytes from one 8-row group to the next, LBO unused for swizzled K-major (encoded
// as 16 bytes, CUTLASS's convention). A k16 step inside the 128-byte row advances the start address by 32 bytes
// (k0 % 64 * 2): the hardware's XOR on the absolute address then finds the chunks where cp.async put them. Requires
// row0 % 8 == 0, k0 % 16 == 0.
template <int kRows>
__host__ __device__ constexpr uint64_t desc_k_major(uint32_t base, int row0, int k0) {
  return sw128_desc(base + uint32_t(k0 / 64) * Sw128<kRows>::kBlockBytes + uint32_t(row0) * 128 + uint32_t(k0 % 64) * 2,
                    16, Sw128<kRows>::kAtomBytes);
}

// MN-major operand (B [16 x N] or A [64 x 16] with imm-trans 1: the operand's K rows are X's rows k0 .. k0 + 15, its
// M or N columns X's columns mn0 ..) of a Sw128<kRows> tile at `base`: O = P V with X = V [keys][D]. The canonical
// MN-major SW128 layout: 64 MN elements contiguous in a 128-byte row, K rows 128 bytes apart, SBO = 1024 bytes from
// one 8-row K group to the next, LBO = the next 64 MN columns (our column block, kRows * 128 bytes; CUTLASS's
// ((T,8,m),(8,k)) : ((1,T,LBO),(8T,SBO))). A k16 step is two whole atoms (start += 2048). Requires k0 % 8 == 0,
// mn0 % 64 == 0.
template <int kRows>
__host__ __device__ constexpr uint64_t desc_mn_major(uint32_t base, int k0, int mn0) {
  return sw128_desc(base + uint32_t(mn0 / 64) * Sw128<kRows>::kBlockBytes + uint32_t(k0) * 128,
                    Sw128<kRows>::kBlockBytes, Sw128<kRows>::kAtomBytes);
}

// A model of how the hardware reads a descriptor (PTX ISA "Shared Memory Matrix Layout", canonical 128-byte-swizzle
// layouts, bf16), checked at compile time against Sw128::offset, i.e. against where cp_async_rows_sw128 writes: the
// byte of operand element (i, k) of a k16 slab (K-major: i < M or N, k < 16; MN-major: k < 16, i < M or N) is
//   K-major:  start + (i / 8) SBO + (i % 8) 128 + 2 k
//   MN-major: start + (k / 8) SBO + (k % 8) 128 + (i / 64) LBO + 2 (i % 64)
// swizzled by XORing address bits [4:6] with bits [7:9]. (The tile base is 0 here: 1024-aligned, as required.)
// This guards the descriptor arithmetic; the probe (bench/gpu_wgmma_probe.cpp) guards the model itself.
namespace model {
constexpr uint32_t field(uint64_t desc, int lo) { return uint32_t(desc >> lo & 0x3FFFu) << 4; }
constexpr uint32_t swizzle(uint32_t addr) { return addr ^ ((addr >> 7 & 7u) << 4); }
constexpr uint32_t k_major_byte(uint64_t desc, int i, int k) {
  return swizzle(field(desc, 0) + uint32_t(i / 8) * field(desc, 32) + uint32_t(i % 8) * 128 + uint32_t(k) * 2);
}
constexpr uint32_t mn_major_byte(uint64_t desc, int k, int i) {
  return swizzle(field(desc, 0) + uint32_t(k / 8) * field(desc, 32) + uint32_t(k % 8) * 128 +
                 uint32_t(i / 64) * field(desc, 16) + uint32_t(i % 64) * 2);
}
// Every element of a [kRows x cols] Sw128 tile, read as K-major slabs of `rows` operand rows (row0 = 0, rows, ...)
// and as MN-major slabs of k16 rows x cols, lands on the byte Sw128::offset gives.
template <int kRows>
constexpr bool descriptors_match_layout(int cols, int rows) {
  for (int row0 = 0; row0 < kRows; row0 += rows)
    for (int k0 = 0; k0 < cols; k0 += 16)
      for (int i = 0; i < rows; ++i)
        for (int k = 0; k < 16; ++k)
          if (k_major_byte(desc_k_major<kRows>(0, row0, k0), i, k) != Sw128<kRows>::offset(row0 + i, k0 + k))
            return false;
  for (int k0 = 0; k0 < kRows; k0 += 16)
    for (int k = 0; k < 16; ++k)
      for (int i = 0; i < cols; ++i)
        if (mn_major_byte(desc_mn_major<kRows>(0, k0, 0), k, i) != Sw128<kRows>::offset(k0 + k, i)) return false;
  return true;
}
static_assert(descriptors_match_layout<64>(64, 64));
static_assert(descriptors_match_layout<64>(128, 64));
static_assert(descriptors_match_layout<128>(64, 64));
static_assert(descriptors_match_layout<128>(128, 64));  // Q of the forward: warpgroup 1 reads from row 64
static_assert(descriptors_match_layout<128>(128, 128));
}  // namespace model

// dst (a Sw128<kRows> tile of D columns) <- rows row0 + r, r < kRows, of head `head` of src [T, heads, dh] (token rows
// ld elements apart), asynchronously (cp.async.cg; commit and wait are the caller's): zeros at and beyond T and in
// the columns [dh, D) that pad a head dim dh < D (a multiple of 8), as attn::cp_async_rows. Thread x copies the
// 16-byte chunk x % (D / 8) of rows x / (D / 8) + kStep i. The data is written through the generic proxy: a wgmma
// may read it only after cp.async.wait_group, fence_proxy_async() and a barrier (see below).
template <int D, int kRows, int kThreads>
__device__ __forceinline__ void cp_async_rows_sw128(unsigned char* dst, const bf16* src, int64_t row0, int64_t T,
                                                    int64_t ld, int64_t head, int dh) {
  constexpr int kVecs = D / 8, kStep = kThreads / kVecs;
  static_assert(kThreads % kVecs == 0 && kRows % kStep == 0, "every thread copies the same number of rows");
  const int r0 = int(threadIdx.x) / kVecs, c = int(threadIdx.x) % kVecs * 8;
  const int in_range = int(max(int64_t(0), min(T - row0, int64_t(kRows))));  // rows below T
  const bool col_ok = c < dh;
  const bf16* s = src + (row0 + r0) * ld + head * dh + c;
#pragma unroll
  for (int i = 0; i < kRows / kStep; ++i, s += kStep * ld) {
    const int r = r0 + i * kStep;
    const bool ok = col_ok && r < in_range;
    attn::cp_async16(dst + Sw128<kRows>::offset(r, c), ok ? s : src, ok);
  }
}

// Its argument where the sm_90a features exist (device pass for sm_90a), a trap elsewhere.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define QSFT_WG_SM90A(...) __VA_ARGS__
#else
#define QSFT_WG_SM90A(...) __trap()
#endif

// PTX ISA "Async Proxy" / fence.proxy.async: wgmma reads shared memory through the async proxy; writes made through
// the generic proxy (st.shared, cp.async's non-bulk copies) become visible to it only after this fence, executed
// by the writing thread after its writes completed (cp.async.wait_group) and before the barrier that hands the
// data to the warpgroups.
__device__ __forceinline__ void fence_proxy_async() {
  QSFT_WG_SM90A(asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"));
}

// PTX ISA "wgmma.fence": orders this warpgroup's register accesses before the wgmma.mma_async that follow. Needed
// before the first wgmma and after any other instruction wrote an accumulator or RS A register a wgmma will read
// (wgmmas of the same shape accumulating into the same registers are ordered among themselves).
__device__ __forceinline__ void wgmma_fence() {
  QSFT_WG_SM90A(asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"));
}
// PTX ISA "wgmma.commit_group": the wgmmas issued since the last commit form one group.
__device__ __forceinline__ void wgmma_commit() {
  QSFT_WG_SM90A(asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"));
}
// PTX ISA "wgmma.wait_group": waits until at most kInFlight committed groups are pending. Until a group retires,
// its accumulators must be neither read nor written, and its shared-memory operands not overwritten.
template <int kInFlight>
__device__ __forceinline__ void wgmma_wait() {
  QSFT_WG_SM90A(asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kInFlight) : "memory"));
}

// Keeps the compiler from moving accesses of the accumulators across a wgmma issue or wait (the asm's "+f" makes each
// register an opaque in/out at this point; CUTLASS's warpgroup_fence_operand). Call on d before wgmma_fence() and
// after the wgmma_wait() that retires it.
template <int NT>
__device__ __forceinline__ void fence_operands(float (&d)[NT][4]) {
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(d[j][e])::"memory");
}
// The same for RS A fragments a[k-step][4] (.b32 registers of two bf16) that a wgmma reads.
template <int K>
__device__ __forceinline__ void fence_operands(uint32_t (&a)[K][4]) {
#pragma unroll
  for (int kk = 0; kk < K; ++kk)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(a[kk][e])::"memory");
}

// The accumulator operand lists of the asm statements below: n8 column blocks j .. j + 3 (16 registers).
#define QSFT_WG_ACC16(j)                                                                                               \
  "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3]), "+f"(d[j + 1][0]), "+f"(d[j + 1][1]), "+f"(d[j + 1][2]), \
      "+f"(d[j + 1][3]), "+f"(d[j + 2][0]), "+f"(d[j + 2][1]), "+f"(d[j + 2][2]), "+f"(d[j + 2][3]),                   \
      "+f"(d[j + 3][0]), "+f"(d[j + 3][1]), "+f"(d[j + 3][2]), "+f"(d[j + 3][3])
#define QSFT_WG_ACC32 QSFT_WG_ACC16(0), QSFT_WG_ACC16(4)
#define QSFT_WG_ACC64 QSFT_WG_ACC32, QSFT_WG_ACC16(8), QSFT_WG_ACC16(12)
#define QSFT_WG_REGS32                                                                                              \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31}"
#define QSFT_WG_REGS64                                                                                              \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, "  \
  "%46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"

// PTX ISA "wgmma.mma_async" (.m64nNk16 .f32.bf16.bf16): d [64 x N] = A B + (accumulate ? d : 0), issued
// asynchronously by the whole warpgroup (convergent: all 128 threads, same operands' descriptors). scale-d is the
// predicate from `accumulate`; imm-scale-a/b = 1 (no negation). SS: A by descriptor, kTransA / kTransB = 0 for
// K-major, 1 for MN-major operands. RS: A from registers (the fragment above), only B's transpose exists.
template <int N>
struct Wgmma;

// Wgmma<N>'s two members for one N: the accumulator registers are operands %0 .. %(N/2 - 1) (kRegs, kAcc), the
// rest follow (x0 .. x6: their operand numbers; SS: a, b, accumulate, trans-a, trans-b; RS: a0..a3, b, accumulate,
// trans-b).
#define QSFT_WG_DEFINE(N, kRegs, kAcc, x0, x1, x2, x3, x4, x5, x6)                                                     \
  template <>                                                                                                          \
  struct Wgmma<N> {                                                                                                    \
    template <int kTransA, int kTransB>                                                                                \
    __device__ __forceinline__ static void ss(float (&d)[N / 8][4], uint64_t a, uint64_t b, bool accumulate) {         \
      QSFT_WG_SM90A(asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" #x2 ", 0;\n"                                     \
                                 "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32.bf16.bf16 " kRegs ", %" #x0 ", %" #x1 \
                                 ", p, 1, 1, %" #x3 ", %" #x4 ";\n}\n"                                                 \
                                 : kAcc                                                                                \
                                 : "l"(a), "l"(b), "r"(int(accumulate)), "n"(kTransA), "n"(kTransB)));                 \
    }                                                                                                                  \
    template <int kTransB>                                                                                             \
    __device__ __forceinline__ static void rs(float (&d)[N / 8][4], const uint32_t (&a)[4], uint64_t b,                \
                                              bool accumulate) {                                                       \
      QSFT_WG_SM90A(                                                                                                   \
          asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" #x5 ", 0;\n"                                               \
                       "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32.bf16.bf16 " kRegs ", {%" #x0 ", %" #x1          \
                       ", %" #x2 ", %" #x3 "}, %" #x4 ", p, 1, 1, %" #x6 ";\n}\n"                                      \
                       : kAcc                                                                                          \
                       : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(int(accumulate)), "n"(kTransB)));     \
    }                                                                                                                  \
  };
QSFT_WG_DEFINE(64, QSFT_WG_REGS32, QSFT_WG_ACC32, 32, 33, 34, 35, 36, 37, 38)
QSFT_WG_DEFINE(128, QSFT_WG_REGS64, QSFT_WG_ACC64, 64, 65, 66, 67, 68, 69, 70)

#undef QSFT_WG_DEFINE
#undef QSFT_WG_SM90A
#undef QSFT_WG_ACC16
#undef QSFT_WG_ACC32
#undef QSFT_WG_ACC64
#undef QSFT_WG_REGS32
#undef QSFT_WG_REGS64

// d [64 x N] (+)= A [64 x 16 K] B [16 K x N], both from Sw128 tiles, K / 16 wgmmas issued back to back (not
// committed: the caller commits and waits). A: K-major rows a_row0 .. of an a-tile with kARows rows (Q, its
// warpgroup's 64 rows). B: K-major (B^T's rows = the b-tile's rows b_row0 .., kTransB 0: K for S = Q K^T) or
// MN-major (B's rows = the b-tile's rows, kTransB 1: V for O = P V; b_row0 is then the first K row and N starts at
// column 0). accumulate false: the first k-step overwrites d.
template <int N, int K, int kARows, int kBRows, int kTransB>
__device__ __forceinline__ void wgmma_ss_k(float (&d)[N / 8][4], uint32_t a_base, int a_row0, uint32_t b_base,
                                           int b_row0, bool accumulate) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    const uint64_t da = desc_k_major<kARows>(a_base, a_row0, 16 * kk);
    const uint64_t db =
        kTransB ? desc_mn_major<kBRows>(b_base, b_row0 + 16 * kk, 0) : desc_k_major<kBRows>(b_base, b_row0, 16 * kk);
    Wgmma<N>::template ss<0, kTransB>(d, da, db, accumulate || kk > 0);
  }
}

// The RS A operands of a product over K columns from fp32 accumulators p [64 x K] of this warpgroup: a[kk] is k16
// step kk of bf16(p) (to_a). Convert all of them BEFORE the wgmma_fence() that precedes the wgmmas reading them:
// registers written between two wgmmas in flight would make ptxas serialise them (or race).
template <int K>
__device__ __forceinline__ void to_a_all(uint32_t (&a)[K / 16][4], const float (&p)[K / 8][4]) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) attn::to_a(a[kk], p, kk);
}

// d [64 x N] (+)= A [64 x K] B [K x N] with A in registers (a[kk]: k16 step kk, e.g. from to_a_all) and B MN-major
// from the b-tile's rows b_row0 .. b_row0 + K - 1, columns 0 .. N - 1 (O = P V). Not committed.
template <int N, int K, int kBRows>
__device__ __forceinline__ void wgmma_rs_k(float (&d)[N / 8][4], const uint32_t (&a)[K / 16][4], uint32_t b_base,
                                           int b_row0, bool accumulate) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk)
    Wgmma<N>::template rs<1>(d, a[kk], desc_mn_major<kBRows>(b_base, b_row0 + 16 * kk, 0), accumulate || kk > 0);
}

}  // namespace qsft::cuda::wg
