// gpu_ops_bench's LM head + cross-entropy part: the whole op and the row pass alone with each row pass of
// kernels/dev/cross_entropy, after checking every variant against the production pass on small and ragged rows.
#if defined(QSFT_HAVE_CUDA)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/gpu_ops_bench.h"
#include "kernels/cross_entropy_cuda.h"
#include "kernels/dev/cross_entropy/variants.h"

namespace qsft {

namespace {

// What a row pass leaves: row losses, hits and (want_grad) the gradient rows, on the host.
struct RowsOut {
  std::vector<float> loss, grad;
  std::vector<int32_t> hits;
};

// Runs `rows_fn` over a fresh copy of `pristine` (bf16 [r.rows, r.V]) into r's buffers and reads them back.
RowsOut run_rows(Ops& ops, void (*rows_fn)(const cuda::SoftmaxCeRows&, void*), const cuda::SoftmaxCeRows& r,
                 const Tensor& pristine, Tensor& logits) {
  ops.copy(logits, pristine);
  rows_fn(r, nullptr);
  RowsOut o{std::vector<float>(size_t(r.rows)), {}, std::vector<int32_t>(size_t(r.rows))};
  ops.copy_to_host(o.loss.data(), r.row_loss, o.loss.size() * 4);
  ops.copy_to_host(o.hits.data(), r.row_correct, o.hits.size() * 4);
  if (r.want_grad) {
    std::vector<uint16_t> bits(size_t(r.rows * r.V));
    ops.copy_to_host(bits.data(), logits.data, bits.size() * 2);
    for (uint16_t b : bits) o.grad.push_back(bf16_to_f32(b));
  }
  return o;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::fabs(a[i] - b[i])));
  return d;
}

// Every variant against the production pass (the first) on 64 fresh random rows of V bf16 logits: max |diff| of
// row losses and gradients, and whether every hit agrees. Rows of V = 8 or 1000 leave some blocks of a cluster
// variant an empty or shorter slice; the production pass takes them all.
void check_variants(Ops& ops, const std::vector<dev::SoftmaxCeVariant>& variants, int64_t V, bool want_grad,
                    std::mt19937& rng) {
  const int64_t rows = 64;
  Buf logits(ops, DType::BF16, {rows, V}, rng), pristine(ops, DType::BF16, {rows, V}, rng),
      targets(ops, DType::I32, {rows}, rng), ids(ops, DType::I32, {rows}, rng), row_loss(ops, DType::F32, {rows}, rng),
      row_correct(ops, DType::I32, {rows}, rng);
  std::vector<int32_t> tg(static_cast<size_t>(rows)), idx(static_cast<size_t>(rows));
  for (int64_t t = 0; t < rows; ++t) {
    tg[size_t(t)] = int32_t(rng() % uint32_t(V));
    idx[size_t(t)] = int32_t(rows - 1 - t);  // rows read their targets through idx, not in order
  }
  targets.set_i32(tg);
  ids.set_i32(idx);
  const cuda::SoftmaxCeRows r{DType::BF16,      logits.t.data,      rows,      V,
                              targets.t.i32(),  ids.t.i32(),        1.0f / 64, want_grad,
                              row_loss.t.f32(), row_correct.t.i32()};
  const RowsOut ref = run_rows(ops, variants[0].rows, r, pristine.t, logits.t);
  for (size_t k = 1; k < variants.size(); ++k) {
    const auto& v = variants[k];
    if (v.supports && !v.supports(DType::BF16, V)) {
      std::printf("  check V = %lld: %s skipped, not supported\n", (long long)V, v.name);
      continue;
    }
    const RowsOut got = run_rows(ops, v.rows, r, pristine.t, logits.t);
    const bool hits = got.hits == ref.hits;
    std::printf("  check V = %lld%s: %s: max |diff| from the first: row loss %.3g, gradient %.3g, hits %s\n",
                (long long)V, want_grad ? " with gradient" : "", v.name, max_abs_diff(got.loss, ref.loss),
                want_grad ? max_abs_diff(got.grad, ref.grad) : 0.0, hits ? "equal" : "DIFFER");
  }
}

}  // namespace

// LM head + cross-entropy at the 7B shape (V = 152064, H = 3584, 4096 tokens, all trained): the whole op
// (two GEMMs of 2 T H V FLOPs each, the row pass, gathers) with each row pass of kernels/dev/cross_entropy, then the
// row pass alone over [4096, V] bf16 logits with the gradient: ms, GB/s of the bytes it moves (variant.row_reads
// reads + 1 write of the logits), its share of the copy ceiling; before them each variant's difference from the
// first on 64 rows (check_variants: V = 152064, and ragged rows of 1000 and 8).
void bench_lm_head_ce(Ops& ops, const Ceilings& ceil, std::mt19937& rng) {
  const DType B = DType::BF16;
  const int64_t T = 4096, H = 3584, V = 152064;
  std::vector<dev::SoftmaxCeVariant> variants;  // those this device runs at V
  for (const auto& v : dev::softmax_ce_variants()) {
    if (!v.supports || v.supports(B, V))
      variants.push_back(v);
    else
      std::printf("ce rows %s: skipped, not supported on this device at V = %lld\n", v.name, (long long)V);
  }
  check_variants(ops, variants, V, true, rng);
  check_variants(ops, dev::softmax_ce_variants(), 1000, true, rng);
  check_variants(ops, dev::softmax_ce_variants(), 1000, false, rng);
  check_variants(ops, dev::softmax_ce_variants(), 8, true, rng);
  Buf h(ops, B, {T, H}, rng), W(ops, B, {V, H}, rng), targets(ops, DType::I32, {T}, rng),
      loss(ops, DType::F32, {1}, rng), correct(ops, DType::I32, {1}, rng), dh(ops, B, {T, H}, rng);
  std::vector<int32_t> tg(static_cast<size_t>(T)), idx(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    tg[size_t(t)] = int32_t((t * 7919) % V);
    idx[size_t(t)] = int32_t(t);
  }
  targets.set_i32(tg);
  {
    cuda::GemmRunner gemm(nullptr);
    cuda::LmHeadCe a;
    a.h = h.t.data;
    a.W = W.t.data;
    a.targets = targets.t.i32();
    a.T = T;
    a.H = H;
    a.V = V;
    a.grad_scale = 1.0f / float(T);
    a.loss_sum = loss.t.f32();
    a.correct = correct.t.i32();
    a.dh = dh.t.data;
    Buf scratch(ops, DType::I32, {int64_t(cuda::lm_head_ce_scratch_bytes(a) / 4 + 1)}, rng);
    for (const auto& v : variants) {
      a.row_pass = v.rows;
      const double t = median_seconds(
          ops, [&] { cuda::lm_head_ce(a, gemm, scratch.t.data, nullptr); }, 3);
      print_row({std::string("lm_head_ce ") + v.name, "7B", T, t * 1e3, 4.0 * T * H * V / t / 1e12, true,
                 4.0 * T * H * V / t / 1e12 / ceil.tflops});
    }
  }
  Buf logits(ops, B, {T, V}, rng), ids(ops, DType::I32, {T}, rng), row_loss(ops, DType::F32, {T}, rng),
      row_correct(ops, DType::I32, {T}, rng);
  ids.set_i32(idx);
  const cuda::SoftmaxCeRows r{B,
                              logits.t.data,
                              T,
                              V,
                              targets.t.i32(),
                              ids.t.i32(),
                              1.0f / float(T),
                              true,
                              row_loss.t.f32(),
                              row_correct.t.i32()};
  for (const auto& v : variants) {
    const double t = median_seconds(ops, [&] { v.rows(r, nullptr); });
    const double bytes = double(v.row_reads + 1) * double(T) * double(V) * 2.0;
    const double gbps = bytes / t / 1e9;
    print_row({std::string("ce rows ") + v.name, "7B", T, t * 1e3, gbps, false, gbps / ceil.gbps,
               double(T) * double(V) * 2.0});
  }
}

}  // namespace qsft
#endif
