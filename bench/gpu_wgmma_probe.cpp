// The Hopper wgmma building blocks (kernels/attention_wgmma_cuda.h) against a CPU product, before anything
// built on them runs: every case of wgmma_probe_cases() (SS with K-major / MN-major A and B, RS with A in
// registers, the attention chain S = A B^T -> bf16 P in registers -> P V, also by two warpgroups on a 128-row A as
// the forward kernel runs it; k-steps inside one 128-byte swizzle atom (K = 64) and across two (K = 128), N = 64
// and 128) on fresh random bf16 inputs, the output poisoned with NaN.
// Per case: max abs difference, relative L2, cosine, PASS/FAIL. On a FAIL (SS and RS cases) three runs on
// structured inputs say where the kernel's elements come from, so that a wrong layout can be fixed without another
// GPU run:
//   rows: A[i][0] = i + 1, B[0][j] = 1, else 0   -> output (r, c) = the reference row it holds, + 1
//   cols: A[i][0] = 1, B[0][j] = j + 1, else 0   -> the reference column, + 1
//   k:    A[i][k0] = 1 (one column), B[k][j] = k + 1 -> the B row (k) that A's column k0 met, + 1 (shown at the
//         first and the last output column)
// printed as maps ("output row r <- reference row"), "." where right, "-" where the kernel left 0 / NaN, "*" where
// the rows' values differ across the columns (or the reverse). Exit status 1 on any FAIL. Runs in well under 5 s.
//   gpu_wgmma_probe
#include <cmath>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/base/half.h"

#if QSFT_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/dev/attention/05_wgmma.h"

namespace qsft {
namespace {

using dev::WgmmaMode;
using dev::WgmmaProbeCase;
using Bits = std::vector<unsigned short>;

std::string case_name(const WgmmaProbeCase& pc) {
  char buf[96];
  const char* mode = pc.mode == WgmmaMode::Ss ? "SS" : pc.mode == WgmmaMode::Rs ? "RS" : "chain S=AB^T,P V";
  const char* a = pc.mode == WgmmaMode::Ss ? (pc.a_mn ? "A MN-major" : "A K-major") : "A regs";
  const char* b = pc.mode == WgmmaMode::Chain ? "V MN-major" : pc.b_mn ? "B MN-major" : "B K-major";
  std::snprintf(buf, sizeof buf, "%-16s %-10s %-10s M=%-3d N=%-3d K=%-3d", mode, a, b, 64 * pc.wgs, pc.N, pc.K);
  return buf;
}

// The logical operands of a case: a [M x K] (M = 64 warpgroups), b [K x N] (chain: [128 x K], the keys' rows),
// v [128 x N] (chain).
struct Operands {
  Bits a, b, v;
  explicit Operands(const WgmmaProbeCase& pc)
      : a(size_t(64) * pc.wgs * pc.K, 0),
        b(size_t(pc.mode == WgmmaMode::Chain ? 128 * pc.K : pc.K * pc.N), 0),
        v(size_t(128) * pc.N, 0) {}
};

float f(unsigned short x) { return bf16_to_f32(x); }

// The CPU product in double from the bf16 values (chain: P = bf16(S) as the kernel rounds it).
std::vector<double> reference(const WgmmaProbeCase& pc, const Operands& op) {
  const int M = 64 * pc.wgs;
  std::vector<double> c(size_t(M) * pc.N, 0.0);
  if (pc.mode != WgmmaMode::Chain) {
    for (int i = 0; i < M; ++i)
      for (int k = 0; k < pc.K; ++k)
        for (int j = 0; j < pc.N; ++j) c[i * pc.N + j] += double(f(op.a[i * pc.K + k])) * f(op.b[k * pc.N + j]);
    return c;
  }
  for (int i = 0; i < M; ++i)
    for (int key = 0; key < 128; ++key) {
      double s = 0.0;
      for (int k = 0; k < pc.K; ++k) s += double(f(op.a[i * pc.K + k])) * f(op.b[key * pc.K + k]);
      const double p = f(f32_to_bf16(float(s)));
      for (int j = 0; j < pc.N; ++j) c[i * pc.N + j] += p * f(op.v[key * pc.N + j]);
    }
  return c;
}

std::vector<float> run(const WgmmaProbeCase& pc, const Operands& op) {
  std::vector<float> c(size_t(64) * pc.wgs * pc.N);
  dev::wgmma_probe_run(pc, op.a.data(), op.b.data(), op.v.data(), c.data());
  return c;
}

// Returns true when the case passes on random inputs.
bool check_random(const WgmmaProbeCase& pc, std::mt19937& rng) {
  Operands op(pc);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (Bits* x : {&op.a, &op.b, &op.v})
    for (auto& e : *x) e = f32_to_bf16(dist(rng));
  const std::vector<double> want = reference(pc, op);
  const std::vector<float> got = run(pc, op);
  double max_abs = 0.0, diff2 = 0.0, ref2 = 0.0, got2 = 0.0, dot = 0.0;
  bool finite = true;
  for (size_t i = 0; i < want.size(); ++i) {
    finite = finite && std::isfinite(got[i]);
    const double d = got[i] - want[i];
    max_abs = std::fmax(max_abs, std::fabs(d));
    diff2 += d * d, ref2 += want[i] * want[i], got2 += double(got[i]) * got[i], dot += want[i] * got[i];
  }
  const double rel = std::sqrt(diff2 / ref2), cosine = dot / std::sqrt(ref2 * got2);
  // fp32 accumulation vs double: ~1e-6; the chain's P may round differently from the CPU's near ties: ~1e-4.
  const bool pass = finite && rel < (pc.mode == WgmmaMode::Chain ? 5e-3 : 1e-4);
  std::printf("  %s  max abs %9.2e  rel L2 %9.2e  cosine %8.5f  %s%s\n", case_name(pc).c_str(), max_abs, rel, cosine,
              pass ? "PASS" : "FAIL", finite ? "" : " (NaN: elements not written)");
  return pass;
}

// An output's value as the 0-based index it encodes (value - 1), or -1 for 0 / NaN / not an integer >= 1.
int decode(float x) {
  if (!std::isfinite(x) || x < 0.5f || std::fabs(x - std::round(x)) > 1e-3f) return -1;
  return int(std::round(x)) - 1;
}

// One line per map: entry i is the index output i holds ("." when it is i, "-" when nothing, "*" appended when
// the line's other elements disagree).
void print_map(const char* title, const std::vector<int>& held, const std::vector<bool>& uniform) {
  std::string line;
  int wrong = 0;
  for (size_t i = 0; i < held.size(); ++i) {
    const bool right = held[i] == int(i) && uniform[i];
    wrong += !right;
    line += held[i] < 0 ? "-" : right ? "." : std::to_string(held[i]);
    if (!uniform[i]) line += "*";
    line += " ";
  }
  std::printf("    %s (%d of %zu wrong):\n      %s\n", title, wrong, held.size(), line.c_str());
}

// Structured runs of a failing SS / RS case (the header's maps).
void diagnose(const WgmmaProbeCase& pc) {
  const int M = 64 * pc.wgs, N = pc.N, K = pc.K;
  const unsigned short one = f32_to_bf16(1.0f);
  Operands rows(pc), cols(pc);
  for (int i = 0; i < M; ++i) rows.a[i * K] = f32_to_bf16(float(i + 1)), cols.a[i * K] = one;
  for (int j = 0; j < N; ++j) rows.b[j] = one, cols.b[j] = f32_to_bf16(float(j + 1));
  const std::vector<float> by_row = run(pc, rows), by_col = run(pc, cols);
  std::vector<int> row_of(M), col_of(N);
  std::vector<bool> row_uniform(M, true), col_uniform(N, true);
  for (int r = 0; r < M; ++r) {
    row_of[r] = decode(by_row[r * N]);
    for (int c = 0; c < N; ++c) row_uniform[r] = row_uniform[r] && decode(by_row[r * N + c]) == row_of[r];
  }
  for (int c = 0; c < N; ++c) {
    col_of[c] = decode(by_col[c]);
    for (int r = 0; r < M; ++r) col_uniform[c] = col_uniform[c] && decode(by_col[r * N + c]) == col_of[c];
  }
  // The k map at the first and the last output column (N = 128: one in each 64-column block of an MN-major B).
  const int map_cols[2] = {0, N - 1};
  std::vector<int> k_of[2] = {std::vector<int>(K), std::vector<int>(K)};
  std::vector<bool> k_uniform[2] = {std::vector<bool>(K, true), std::vector<bool>(K, true)};
  for (int k0 = 0; k0 < K; ++k0) {
    Operands ks(pc);
    for (int i = 0; i < M; ++i) ks.a[i * K + k0] = one;
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < N; ++j) ks.b[k * N + j] = f32_to_bf16(float(k + 1));
    const std::vector<float> got = run(pc, ks);
    for (int m = 0; m < 2; ++m) {
      k_of[m][k0] = decode(got[map_cols[m]]);
      for (int r = 0; r < M; ++r)
        k_uniform[m][k0] = k_uniform[m][k0] && decode(got[r * N + map_cols[m]]) == k_of[m][k0];
    }
  }
  std::printf("    structured inputs (\".\" right, \"-\" 0 or NaN, \"*\" differs across the line):\n");
  print_map("output row r <- reference row (at column 0; * = not at every column)", row_of, row_uniform);
  print_map("output column c <- reference column (at row 0; * = not at every row)", col_of, col_uniform);
  for (int m = 0; m < 2; ++m) {
    const std::string title =
        "A's column k meets B's row k' (output column " + std::to_string(map_cols[m]) + "; * = not at every row)";
    print_map(title.c_str(), k_of[m], k_uniform[m]);
  }
}

}  // namespace
}  // namespace qsft

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // every line out before a fault can end the process
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("skipped: no CUDA device\n");
    return 0;
  }
  const std::string why = qsft::dev::wgmma_unsupported_reason();
  if (!why.empty()) {
    std::printf("wgmma probe skipped: %s\n", why.c_str());
    return 0;
  }
  std::printf(
      "wgmma probe (kernels/attention_wgmma_cuda.h): C [M x N] = A B by M / 64 warpgroups vs a CPU "
      "product\n");
  std::mt19937 rng(11);
  int failed = 0;
  for (const qsft::dev::WgmmaProbeCase& pc : qsft::dev::wgmma_probe_cases()) {
    try {
      if (qsft::check_random(pc, rng)) continue;
      ++failed;
      if (pc.mode == qsft::dev::WgmmaMode::Chain)
        std::printf(
            "    (the chain composes the SS and RS cases above with to_a_all: if those pass, the P fragments "
            "are wrong)\n");
      else
        qsft::diagnose(pc);
    } catch (const std::exception& e) {  // a fault leaves the CUDA context unusable: stop here
      std::printf("  %s  FAIL: %s\nwgmma probe: stopped after a CUDA error\n", qsft::case_name(pc).c_str(), e.what());
      return 1;
    }
  }
  std::printf("wgmma probe: %d of %zu cases FAILED\n", failed, qsft::dev::wgmma_probe_cases().size());
  return failed ? 1 : 0;
}
#else
#include <cstdio>
int main() {
  std::printf("skipped: built without CUDA\n");
  return 0;
}
#endif
