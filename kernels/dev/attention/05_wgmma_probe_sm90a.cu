// The wgmma probe (05_wgmma.h): one warpgroup (or two: rows 64 wg ..) computes C [64 wgs x N] = A B through the
// building blocks of wgmma_cuda.h exactly as the attention kernels use them (cp_async_rows_sw128 into Sw128 tiles,
// fence_proxy_async, the descriptors, SS and RS wgmma, to_a_all) and writes its accumulators where the documented
// fragment layout says they belong; bench/gpu_wgmma_probe.cpp compares with a CPU product. Also the device check of the
// wgmma rows of variants.h.
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "kernels/attention_tile_cuda.h"
#include "kernels/attention_wgmma_cuda.h"
#include "kernels/dev/attention/05_wgmma.h"
#include "kernels/dev/attention/variants.h"

namespace qsft::dev {

std::string wgmma_unsupported_reason() {
  const char* env = std::getenv("QSFT_DEV_WGMMA");
  if (env && std::strcmp(env, "off") == 0) return "QSFT_DEV_WGMMA=off (the wgmma probe failed on this GPU)";
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return "no CUDA device";
  return cuda::attention_wgmma_unsupported_reason("wgmma kernels");
}

bool attention_wgmma_supports(int64_t D) {
  return cuda::attention_supports_head_dim(D) && wgmma_unsupported_reason().empty();
}

namespace {

using cuda::bf16;
using cuda::attn::smem_u32;

// The dynamic shared memory rounded up to 1024 bytes (Sw128 tiles; the launch asks for 1 KiB more).
__device__ __forceinline__ unsigned char* align1024(unsigned char* p) {
  return p + ((1024u - (smem_u32(p) & 1023u)) & 1023u);
}

// A [rows x cols] row-major bf16 matrix from global into a Sw128<rows> tile (the attention loader, one "head"),
// by kThreads threads.
template <int kCols, int kRows, int kThreads>
__device__ void load_tile(unsigned char* dst, const bf16* src) {
  cuda::wg::cp_async_rows_sw128<kCols, kRows, kThreads>(dst, src, 0, kRows, kCols, 0, kCols);
}

// The RS A fragment of k-step kk of this warp's rows of a [64 x K] row-major at a (its warpgroup's rows; the
// layout of wgmma_cuda.h).
template <int K>
__device__ void a_fragment(uint32_t (&f)[4], const bf16* a, int kk) {
  const int w = (threadIdx.x >> 5) & 3, grp = (threadIdx.x & 31) >> 2, tig = threadIdx.x & 3;
  auto pair = [&](int r, int col) {
    const __nv_bfloat162 x = {a[r * K + col], a[r * K + col + 1]};
    return *reinterpret_cast<const uint32_t*>(&x);
  };
  const int r = 16 * w + grp, col = 16 * kk + 2 * tig;
  f[0] = pair(r, col), f[1] = pair(r + 8, col), f[2] = pair(r, col + 8), f[3] = pair(r + 8, col + 8);
}

// c [64 x N] (its warpgroup's rows) <- the warpgroup's accumulators at the places the accumulator layout gives.
template <int N>
__device__ void store_acc(float* c, const float (&d)[N / 8][4]) {
  const int w = (threadIdx.x >> 5) & 3, grp = (threadIdx.x & 31) >> 2, tig = threadIdx.x & 3;
#pragma unroll
  for (int j = 0; j < N / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) c[(16 * w + grp + 8 * (e / 2)) * N + 8 * j + 2 * tig + e % 2] = d[j][e];
}

// kWgs warpgroups, M = 64 kWgs rows of A and C, warpgroup wg the rows 64 wg .. (as the attention forward's
// two). Operands as uploaded: a [M x K] (kAMn: its transpose [K x M]); b [K x N] when kBMn, else its transpose
// [N x K] (Chain: [128 x K]); v [128 x N] (Chain).
template <WgmmaMode kMode, int N, int K, bool kAMn, bool kBMn, int kWgs>
__global__ void __launch_bounds__(128 * kWgs)
    wgmma_probe_kernel(const bf16* a, const bf16* b, const bf16* v, float* c) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  namespace wg = cuda::wg;
  constexpr bool kChain = kMode == WgmmaMode::Chain;
  constexpr int M = 64 * kWgs, kThreads = 128 * kWgs;
  constexpr int kBRows = kChain ? 128 : kBMn ? K : N, kBCols = kChain ? K : kBMn ? N : K;
  const int row0 = 64 * int(threadIdx.x / 128);  // this warpgroup's first row of A and C
  extern __shared__ unsigned char smem_raw[];
  unsigned char* a_s = align1024(smem_raw);
  unsigned char* b_s = a_s + M * K * 2;
  unsigned char* v_s = b_s + kBRows * kBCols * 2;
  if constexpr (kMode != WgmmaMode::Rs) {
    if constexpr (kAMn)
      load_tile<M, K, kThreads>(a_s, a);
    else
      load_tile<K, M, kThreads>(a_s, a);
  }
  load_tile<kBCols, kBRows, kThreads>(b_s, b);
  if constexpr (kChain) load_tile<N, 128, kThreads>(v_s, v);
  cuda::attn::cp_async_commit();
  cuda::attn::cp_async_wait<0>();  // this thread's copies landed (generic proxy)
  wg::fence_proxy_async();         // ... and are visible to the async proxy that wgmma reads through
  __syncthreads();                 // ... and so are every other thread's
  const uint32_t a_base = smem_u32(a_s), b_base = smem_u32(b_s), v_base = smem_u32(v_s);

  float d[N / 8][4];
  if constexpr (kMode == WgmmaMode::Ss) {
    wg::fence_operands(d);
    wg::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < K / 16; ++kk) {
      const uint64_t da =
          kAMn ? wg::desc_mn_major<K>(a_base, 16 * kk, row0) : wg::desc_k_major<M>(a_base, row0, 16 * kk);
      const uint64_t db = kBMn ? wg::desc_mn_major<K>(b_base, 16 * kk, 0) : wg::desc_k_major<N>(b_base, 0, 16 * kk);
      wg::Wgmma<N>::template ss<kAMn, kBMn>(d, da, db, kk > 0);
    }
  } else if constexpr (kMode == WgmmaMode::Rs) {
    uint32_t af[K / 16][4];
#pragma unroll
    for (int kk = 0; kk < K / 16; ++kk) a_fragment<K>(af[kk], a + row0 * K, kk);
    wg::fence_operands(d);
    wg::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < K / 16; ++kk) {
      const uint64_t db = kBMn ? wg::desc_mn_major<K>(b_base, 16 * kk, 0) : wg::desc_k_major<N>(b_base, 0, 16 * kk);
      wg::Wgmma<N>::template rs<kBMn>(d, af[kk], db, kk > 0);
    }
  } else {  // S = A B^T, then C = bf16(S) V, as the forward kernel does it
    float s[16][4];
    wg::fence_operands(s);
    wg::wgmma_fence();
    wg::wgmma_ss_k<128, K, M, 128, 0>(s, a_base, row0, b_base, 0, false);
    wg::wgmma_commit();
    wg::wgmma_wait<0>();
    wg::fence_operands(s);
    uint32_t p[128 / 16][4];
    wg::to_a_all<128>(p, s);
    wg::fence_operands(d);
    wg::wgmma_fence();
    wg::wgmma_rs_k<N, 128, 128>(d, p, v_base, 0, false);
  }
  wg::wgmma_commit();
  wg::wgmma_wait<0>();
  wg::fence_operands(d);
  store_acc<N>(c + row0 * N, d);
#else
  __trap();
#endif
}

using ProbeKernel = void (*)(const bf16*, const bf16*, const bf16*, float*);
struct Instance {
  WgmmaProbeCase pc;
  ProbeKernel kernel;
};
constexpr auto kSs = WgmmaMode::Ss, kRs = WgmmaMode::Rs, kChain = WgmmaMode::Chain;
// K = 64: k-steps inside one 128-byte swizzle atom row; K = 128: across two column blocks (D = 128). N = 128 with
// an MN-major B spans two 64-column blocks (LBO), N = 64 one.
const Instance kInstances[] = {
    {{kSs, 64, 64, false, false}, wgmma_probe_kernel<kSs, 64, 64, false, false, 1>},
    {{kSs, 128, 64, false, false}, wgmma_probe_kernel<kSs, 128, 64, false, false, 1>},
    {{kSs, 64, 128, false, false}, wgmma_probe_kernel<kSs, 64, 128, false, false, 1>},
    {{kSs, 128, 128, false, false}, wgmma_probe_kernel<kSs, 128, 128, false, false, 1>},
    {{kSs, 64, 64, false, true}, wgmma_probe_kernel<kSs, 64, 64, false, true, 1>},
    {{kSs, 128, 128, false, true}, wgmma_probe_kernel<kSs, 128, 128, false, true, 1>},
    {{kSs, 128, 128, true, false}, wgmma_probe_kernel<kSs, 128, 128, true, false, 1>},
    {{kSs, 128, 128, true, true}, wgmma_probe_kernel<kSs, 128, 128, true, true, 1>},
    {{kRs, 64, 128, false, true}, wgmma_probe_kernel<kRs, 64, 128, false, true, 1>},
    {{kRs, 128, 128, false, true}, wgmma_probe_kernel<kRs, 128, 128, false, true, 1>},
    {{kRs, 128, 64, false, true}, wgmma_probe_kernel<kRs, 128, 64, false, true, 1>},
    {{kRs, 128, 128, false, false}, wgmma_probe_kernel<kRs, 128, 128, false, false, 1>},
    {{kChain, 64, 64, false, false}, wgmma_probe_kernel<kChain, 64, 64, false, false, 1>},
    {{kChain, 128, 128, false, false}, wgmma_probe_kernel<kChain, 128, 128, false, false, 1>},
    // the attention forward's shape: two warpgroups, A (Q) [128 x 128], the second from row 64
    {{kChain, 128, 128, false, false, 2}, wgmma_probe_kernel<kChain, 128, 128, false, false, 2>},
    {{kChain, 64, 64, false, false, 2}, wgmma_probe_kernel<kChain, 64, 64, false, false, 2>},
};

bool same_case(const WgmmaProbeCase& x, const WgmmaProbeCase& y) {
  return x.mode == y.mode && x.N == y.N && x.K == y.K && x.a_mn == y.a_mn && x.b_mn == y.b_mn && x.wgs == y.wgs;
}

// x [rows x cols] -> x^T [cols x rows]
std::vector<unsigned short> transposed(const unsigned short* x, int rows, int cols) {
  std::vector<unsigned short> t(size_t(rows) * cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) t[size_t(c) * rows + r] = x[size_t(r) * cols + c];
  return t;
}

struct DeviceBuf {
  explicit DeviceBuf(const void* host, size_t bytes) {
    QSFT_CUDA_CHECK(cudaMalloc(&p, bytes));
    if (host) QSFT_CUDA_CHECK(cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice));
  }
  ~DeviceBuf() { cudaFree(p); }
  DeviceBuf(const DeviceBuf&) = delete;
  DeviceBuf& operator=(const DeviceBuf&) = delete;
  void* p = nullptr;
};

}  // namespace

std::vector<WgmmaProbeCase> wgmma_probe_cases() {
  std::vector<WgmmaProbeCase> cases;
  for (const Instance& in : kInstances) cases.push_back(in.pc);
  return cases;
}

void wgmma_probe_run(const WgmmaProbeCase& pc, const unsigned short* a, const unsigned short* b,
                     const unsigned short* v, float* c) {
  const std::string why = wgmma_unsupported_reason();
  if (!why.empty()) throw std::runtime_error("wgmma probe: " + why);
  const Instance* in = nullptr;
  for (const Instance& x : kInstances)
    if (same_case(x.pc, pc)) in = &x;
  if (!in) throw std::runtime_error("wgmma probe: case not instantiated");
  const bool chain = pc.mode == WgmmaMode::Chain;
  const int M = 64 * pc.wgs;
  const int b_rows = chain ? 128 : pc.K;  // logical b [b_rows x b_cols] as given
  const int b_cols = chain ? pc.K : pc.N;
  // The uploaded orientation: what the kernel's tiles hold (Chain's b is already the keys' rows, K-major).
  const std::vector<unsigned short> a_up = pc.a_mn ? transposed(a, M, pc.K) : std::vector(a, a + M * pc.K);
  const std::vector<unsigned short> b_up =
      chain || pc.b_mn ? std::vector(b, b + b_rows * b_cols) : transposed(b, b_rows, b_cols);
  DeviceBuf a_d(a_up.data(), a_up.size() * 2), b_d(b_up.data(), b_up.size() * 2);
  DeviceBuf v_d(chain ? v : nullptr, size_t(128) * pc.N * 2), c_d(nullptr, size_t(M) * pc.N * 4);
  QSFT_CUDA_CHECK(cudaMemset(c_d.p, 0xFF, size_t(M) * pc.N * 4));  // NaN where nothing is written
  const size_t smem = 1024 + size_t(M) * pc.K * 2 + size_t(b_rows) * b_cols * 2 + (chain ? size_t(128) * pc.N * 2 : 0);
  cuda::attn::launch_with_smem(in->kernel, dim3(1), 128 * pc.wgs, smem, cudaStream_t(nullptr),
                               static_cast<const bf16*>(a_d.p), static_cast<const bf16*>(b_d.p),
                               static_cast<const bf16*>(v_d.p), static_cast<float*>(c_d.p));
  QSFT_CUDA_CHECK(cudaDeviceSynchronize());
  QSFT_CUDA_CHECK(cudaMemcpy(c, c_d.p, size_t(M) * pc.N * 4, cudaMemcpyDeviceToHost));
}

}  // namespace qsft::dev
