#include "engine/model/lora_linear.h"

#include <cstdlib>
#include <cstring>

namespace qsft {

static_assert(kMaxLoraGroupSize <= cpu::kLoraDropoutMaxMembers, "Ops::lora_a_dropout takes every member of a stack");

// With dropout, the A projections read x through Ops::lora_a_dropout (the masks applied where x is read, one call
// for a stack) unless QSFT_LORA_FUSED_DROPOUT=0: then each member's dropout into the scratch and its own GEMM (the
// path before it, kept to compare on the GPU; its dx goes through lora_dx_dropout per member, whose own switch is
// QSFT_SKINNY_GEMM). Read at every call, so tests can switch it.
static bool fused_dropout() {
  const char* v = std::getenv("QSFT_LORA_FUSED_DROPOUT");
  return !(v && std::strcmp(v, "0") == 0);
}

// The scratch seen as a [T, in] tensor shaped like x (x may be [T, n, D]).
static Tensor scratch_like(const Tensor& x, const Tensor& scratch) {
  return Tensor(scratch.data, x.dtype, {x.dim(0), x.numel() / x.dim(0)}, x.device);
}

// dropout(x) into the scratch (or x itself when p == 0), as a [T, in] tensor.
static Tensor dropped_input(Ops& ops, const LoraBranch& l, const Tensor& x, Tensor& xd_scratch) {
  if (l.dropout == 0.0f) return x;
  Tensor xd = scratch_like(x, xd_scratch);
  ops.dropout(x, l.dropout, l.seed, xd);
  return xd;
}

// dx (+)= du A [T, in] for member l (du [T, r] packed). With dropout, d xd/dx = mask/(1-p): the same mask (same
// seed and index) applied to du A by Ops::lora_dx_dropout.
static void add_input_grad(Ops& ops, const LoraBranch& l, const Tensor& du, Tensor& dx, Tensor& xd_scratch,
                           bool accumulate) {
  if (l.dropout == 0.0f)
    ops.gemm(Mat::of(du), false, Mat::of(l.A), false, Mat::of(dx), 1.0f, accumulate ? 1.0f : 0.0f);
  else
    ops.lora_dx_dropout(du, l.A, l.dropout, {&l.seed, 1}, dx, xd_scratch, accumulate);
}

// The members' dropout seeds, in order.
static std::array<uint64_t, kMaxLoraGroupSize> member_seeds(const LoraStack& s) {
  std::array<uint64_t, kMaxLoraGroupSize> seeds{};
  for (int j = 0; j < s.n; ++j) seeds[size_t(j)] = s.m[size_t(j)].seed;
  return seeds;
}

void lora_forward(Ops& ops, const LoraBranch& l, const Tensor& x, Tensor& u, const Tensor& y, Tensor& xd_scratch,
                  bool accumulate) {
  if (l.dropout != 0.0f && fused_dropout()) {
    ops.lora_a_dropout(x, l.A, l.dropout, {&l.seed, 1}, u, xd_scratch);  // u = dropout(x) A^T [T, r]
  } else {
    Tensor xd = dropped_input(ops, l, x, xd_scratch);
    ops.gemm(Mat::of(xd), false, Mat::of(l.A), true, Mat::of(u), 1.0f, 0.0f);  // u = xd A^T   [T, r]
  }
  ops.gemm(Mat::of(u), false, Mat::of(l.B), true, Mat::of(y), l.scaling, accumulate ? 1.0f : 0.0f);  // y (+)= s u B^T
}

void lora_backward(Ops& ops, const LoraBranch& l, const Tensor& x, const Tensor& u, const Tensor& dy_t, Tensor& dx,
                   Tensor& du_scratch, Tensor& xd_scratch, bool accumulate_dx) {
  const Mat dy = Mat::of(dy_t);
  Tensor du(du_scratch.data, du_scratch.dtype, {u.dim(0), u.dim(1)}, u.device);
  ops.gemm(dy, true, Mat::of(u), false, Mat::of(l.dB), l.scaling, 1.0f);   // dB += s dy^T u [out, r]
  ops.gemm(dy, false, Mat::of(l.B), false, Mat::of(du), l.scaling, 0.0f);  // du = s dy B    [T, r]
  Tensor xd = dropped_input(ops, l, x, xd_scratch);
  ops.gemm(Mat::of(du), true, Mat::of(xd), false, Mat::of(l.dA), 1.0f, 1.0f);  // dA += du^T xd [r, in]
  add_input_grad(ops, l, du, dx, xd_scratch, accumulate_dx);
}

// Member j's u (or du): columns [j r, (j+1) r) of the stack's [T, n*r].
static Tensor member_cols(const Tensor& u, const LoraStack& s, int j) {
  const int64_t r = u.dim(1) / s.n;
  return u.cols(j * r, (j + 1) * r);
}

void lora_stack_forward(Ops& ops, const LoraStack& s, const Tensor& x, const Tensor& u, const Tensor* y,
                        Tensor& xd_scratch, bool accumulate) {
  const float p = s.m[0].dropout;  // one configuration: every member's
  if (p != 0.0f && !fused_dropout()) {  // one mask per member: no shared xd
    for (int j = 0; j < s.n; ++j) {
      Tensor uj = member_cols(u, s, j);
      lora_forward(ops, s.m[size_t(j)], x, uj, y[j], xd_scratch, accumulate);
    }
    return;
  }
  if (p != 0.0f) {  // u = [dropout_1(x) A_1^T, ...] [T, n*r]: each member's mask applied as x is read
    const auto seeds = member_seeds(s);
    Tensor u_all = u;
    ops.lora_a_dropout(x, s.A, p, {seeds.data(), size_t(s.n)}, u_all, xd_scratch);
  } else {
    ops.gemm(Mat::of(x), false, Mat::of(s.A), true, Mat::of(u), 1.0f, 0.0f);  // u = x [A_1; ...]^T [T, n*r]
  }
  for (int j = 0; j < s.n; ++j) {  // y_j (+)= s u_j B_j^T [T, out_j]
    const LoraBranch& b = s.m[size_t(j)];
    ops.gemm(Mat::of(member_cols(u, s, j)), false, Mat::of(b.B), true, Mat::of(y[j]), b.scaling,
             accumulate ? 1.0f : 0.0f);
  }
}

void lora_stack_backward(Ops& ops, const LoraStack& s, const Tensor& x, const Tensor& u, const Tensor* dy, Tensor& dx,
                         Tensor& du_scratch, Tensor& xd_scratch, bool accumulate_dx) {
  const float p = s.m[0].dropout;
  if (p != 0.0f && !fused_dropout()) {
    for (int j = 0; j < s.n; ++j)  // dx written by the first member (unless accumulating), added by the rest
      lora_backward(ops, s.m[size_t(j)], x, member_cols(u, s, j), dy[j], dx, du_scratch, xd_scratch,
                    accumulate_dx || j > 0);
    return;
  }
  const Tensor du(du_scratch.data, du_scratch.dtype, {u.dim(0), u.dim(1)}, u.device);  // [T, n*r]
  for (int j = 0; j < s.n; ++j) {  // dB_j += s dy_j^T u_j, du_j = s dy_j B_j: dy_j read once where the backend can
    const LoraBranch& b = s.m[size_t(j)];
    Tensor dB = b.dB, du_j = member_cols(du, s, j);  // views
    ops.lora_db_du(dy[j], member_cols(u, s, j), b.B, b.scaling, dB, du_j, xd_scratch);
  }
  if (p == 0.0f) {
    ops.gemm(Mat::of(du), true, Mat::of(x), false, Mat::of(s.dA), 1.0f, 1.0f);  // [dA_1; ...] += du^T x [n*r, in]
    ops.gemm(Mat::of(du), false, Mat::of(s.A), false, Mat::of(dx), 1.0f, accumulate_dx ? 1.0f : 0.0f);  // dx (+)= du A
    return;
  }
  const auto seeds = member_seeds(s);  // dA_j += du_j^T dropout_j(x): each member's mask rebuilt from its seed
  Tensor dA = s.dA;
  ops.lora_da_dropout(du, x, p, {seeds.data(), size_t(s.n)}, dA, xd_scratch);
  // dx (+)= sum_j mask_j (du_j A_j) / (1 - p)
  ops.lora_dx_dropout(du, s.A, p, {seeds.data(), size_t(s.n)}, dx, xd_scratch, accumulate_dx);
}

}  // namespace qsft
