// Host-side declarations of the wgmma probe (05_wgmma_probe_sm90a.cu): the device check of the wgmma rows of
// variants.h, and the probe kernel that bench/gpu_wgmma_probe.cpp runs against a CPU product
// (kernels/attention_wgmma_cuda.h has the layouts). g++-facing.
#pragma once
#include <string>
#include <vector>

namespace qsft::dev {

// Empty when the current device runs the sm_90a kernels (compute capability exactly 9.0: the "a" features exist
// on no other) and QSFT_DEV_WGMMA is not "off" (tools/gpu-check.sh sets it when the probe failed); otherwise why not.
std::string wgmma_unsupported_reason();

// One probe case: C [M x N] = A [M x K] B [K x N], M = 64 wgs, by wgs warpgroups (warpgroup wg: rows 64 wg ..),
// every operand through the building blocks.
//   Ss:    A and B from Sw128 shared-memory tiles, each K-major or MN-major (a_mn, b_mn).
//   Rs:    A from registers (the fragment layout, loaded from global), B from shared memory (b_mn).
//   Chain: the attention step: S = A B^T (SS, K-major both, B [128 keys x K], S [64 x 128]), P = bf16(S) turned
//          into RS A operands in registers (to_a_all), C = P V (RS, V [128 keys x N] MN-major); N = K.
enum class WgmmaMode { Ss, Rs, Chain };
struct WgmmaProbeCase {
  WgmmaMode mode;
  int N, K;
  bool a_mn, b_mn;
  int wgs = 1;
};
// The instantiated cases (every one bench/gpu_wgmma_probe.cpp runs).
std::vector<WgmmaProbeCase> wgmma_probe_cases();
// Host buffers are bf16 bits, row-major in the logical orientation: a [M x K]; b [K x N] (Chain: b [128 x K], the
// keys' rows); v [128 x N] (Chain only, else unused). c [M x N] fp32 receives the kernel's output as it writes it
// (poisoned with NaN first). Throws on an unsupported device or case.
void wgmma_probe_run(const WgmmaProbeCase& pc, const unsigned short* a, const unsigned short* b,
                     const unsigned short* v, float* c);

}  // namespace qsft::dev
