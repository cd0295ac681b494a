// Stacked LoRA A (lora.h, lora_linear.h): LoraLayout puts the A's of the adapted modules that read the same input
// side by side (full and partial target sets), draws every A's initial values as the unstacked layout did (same
// values per PEFT key), maps vectors of the unstacked order onto it; and the stacked branch (one A GEMM each way)
// computes what the modules one by one compute, on the fp32 CPU backend.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <numeric>

#include "engine/model/lora.h"
#include "engine/model/lora_linear.h"
#include "kernels/rng.h"
#include "test_util.h"
#include "tests/unit/ops_test_util.h"

namespace qsft::test {
namespace {

LoraLayout layout_for(const std::vector<std::string>& targets, int r = 2) {
  LoraConfig lc;
  lc.r = r;
  lc.set_targets(targets, "test");
  return LoraLayout(small_qwen2_config(), lc);
}

// The segment names of layer 0 in flat order, shortened to "q_proj.A".
std::vector<std::string> layer0_order(const LoraLayout& layout) {
  const std::string prefix = "base_model.model.model.layers.0.";
  std::vector<std::string> names;
  for (const ParamSegment& s : layout.params().segments()) {
    if (s.name.rfind(prefix, 0) != 0) continue;
    const std::string rest = s.name.substr(s.name.find('.', prefix.size()) + 1);  // q_proj.lora_A.weight
    names.push_back(rest.substr(0, rest.find('.')) + "." + rest[rest.find("lora_") + 5]);
  }
  return names;
}

TEST(LoraStackLayout, AsOfAGroupAreSideBySide) {
  using V = std::vector<std::string>;
  EXPECT_EQ(layer0_order(layout_for({"all-linear"})),
            (V{"q_proj.A", "k_proj.A", "v_proj.A", "q_proj.B", "k_proj.B", "v_proj.B", "o_proj.A", "o_proj.B",
               "gate_proj.A", "up_proj.A", "gate_proj.B", "up_proj.B", "down_proj.A", "down_proj.B"}));
  EXPECT_EQ(layer0_order(layout_for({"q_proj", "v_proj", "up_proj", "down_proj"})),
            (V{"q_proj.A", "v_proj.A", "q_proj.B", "v_proj.B", "up_proj.A", "up_proj.B", "down_proj.A", "down_proj.B"}));
  const LoraLayout all = layout_for({"all-linear"});
  EXPECT_TRUE(all.stacks());
  EXPECT_FALSE(layout_for({"q_proj", "o_proj", "gate_proj"}).stacks());  // one per group: the unstacked order
  for (int l = 0; l < 2; ++l) {
    const LoraStackSlot* qkv = all.find(l, LoraGroup::qkv);
    ASSERT_NE(qkv, nullptr);
    EXPECT_EQ(qkv->n, 3);
    for (int j = 0; j < qkv->n; ++j) {
      const LoraSlot& s = all.slots()[size_t(qkv->first + j)];
      EXPECT_EQ(s.target, LoraTarget(j));
      EXPECT_EQ(s.a_offset, qkv->a_offset + j * 2 * s.in);  // [3r, in] rows of A_q, A_k, A_v
    }
  }
  EXPECT_EQ(layout_for({"q_proj"}).find(0, LoraGroup::gate_up), nullptr);
}

// Walks the unstacked order (per layer, per target in order: A then B) calling f(key, offset, numel).
template <class F>
void for_each_unstacked(const LoraLayout& layout, F f) {
  int64_t off = 0;
  for (const LoraSlot& s : layout.slots()) {  // slots are in (layer, target) order
    const int64_t r = layout.config().r;
    f(LoraLayout::peft_key(s, 'A'), off, r * s.in, s.in);
    off += r * s.in;
    f(LoraLayout::peft_key(s, 'B'), off, s.out * r, s.in);
    off += s.out * r;
  }
}

TEST(LoraStackLayout, InitialValuesPerPeftKeyAreTheUnstackedOnes) {
  for (const auto& targets : {std::vector<std::string>{"all-linear"}, {"k_proj", "v_proj", "gate_proj", "up_proj"}}) {
    const LoraLayout layout = layout_for(targets, 3);
    const std::vector<float> p = layout.init_params(77);
    for_each_unstacked(layout, [&](const std::string& key, int64_t old_off, int64_t n, int64_t in) {
      const ParamSegment* seg = layout.params().find(key);
      ASSERT_NE(seg, nullptr) << key;
      const bool is_a = key.find("lora_A") != std::string::npos;
      for (int64_t i = 0; i < n; ++i) {
        // PEFT's kaiming bound, drawn at the index the unstacked layout gave it; B starts at zero
        const float bound = 1.0f / std::sqrt(float(in));
        const float want = is_a ? bound * (2.0f * rng::uniform(77, uint64_t(old_off + i)) - 1.0f) : 0.0f;
        ASSERT_EQ(p[size_t(seg->offset + i)], want) << key << " " << i;
      }
    });
  }
}

TEST(LoraStackLayout, FromUnstackedMovesEachKeysValues) {
  const LoraLayout layout = layout_for({"q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "gate_proj"});
  std::vector<float> old(size_t(layout.num_params()));
  std::map<std::string, int64_t> old_offset;
  for_each_unstacked(layout, [&](const std::string& key, int64_t off, int64_t n, int64_t) {
    old_offset[key] = off;
    std::iota(old.begin() + off, old.begin() + off + n, float(off));
  });
  const std::vector<float> now = layout.from_unstacked(old);
  for (const ParamSegment& s : layout.params().segments())
    for (int64_t i = 0; i < s.numel(); ++i) ASSERT_EQ(now[size_t(s.offset + i)], float(old_offset[s.name] + i));
}

// n modules reading one x [T, in]: A's stacked [n r, in], B_j [out_j, r], outputs as column slices of one
// [T, sum out] buffer (the fused QKV / gate_up layout); parameters and gradients in host buffers.
struct StackCase {
  StackCase(int64_t T, int64_t in, int64_t r, std::vector<int64_t> outs, float dropout, uint32_t seed)
      : n(int(outs.size())), r(r), outs(outs), total(std::accumulate(outs.begin(), outs.end(), int64_t(0))),
        x({T, in}), A({n * r, in}), dA({n * r, in}), y({T, total}), dy({T, total}), dx({T, in}) {
    std::mt19937 rng(seed);
    for (F32* t : {&x, &A, &dA, &y, &dy, &dx}) t->set(random_uniform(t->size(), rng));
    int64_t col = 0;
    for (int j = 0; j < n; ++j) {
      B.push_back(std::make_unique<F32>(std::initializer_list<int64_t>{outs[size_t(j)], r}));
      dB.push_back(std::make_unique<F32>(std::initializer_list<int64_t>{outs[size_t(j)], r}));
      B.back()->set(random_uniform(B.back()->size(), rng));
      dB.back()->set(random_uniform(dB.back()->size(), rng));
      LoraBranch& b = s.m[size_t(j)];
      b.A = A.t.rows(j * r, (j + 1) * r);
      b.dA = dA.t.rows(j * r, (j + 1) * r);
      b.B = B.back()->t;
      b.dB = dB.back()->t;
      b.scaling = 1.75f;
      b.dropout = dropout;
      b.seed = 1000 + uint64_t(j);
      ys.push_back(y.t.cols(col, col + outs[size_t(j)]));
      dys.push_back(dy.t.cols(col, col + outs[size_t(j)]));
      col += outs[size_t(j)];
    }
    s.n = n;
    s.A = A.t;
    s.dA = dA.t;
  }
  int n;
  int64_t r;
  std::vector<int64_t> outs;
  int64_t total;
  F32 x, A, dA, y, dy, dx;
  std::vector<std::unique_ptr<F32>> B, dB;
  LoraStack s;
  std::vector<Tensor> ys, dys;
};

// The stacked forward and backward against each module's lora_forward / lora_backward: u, y, dA and dB bit for bit
// (the same dot products, in the same order). dx too for a group of one or with dropout (the per-module path);
// else dx += du [A_1; ...] is one sum over n r products where the modules add n sums of r into dx in turn: the
// same terms rounded in another order, so within a few ulp.
void expect_stack_equals_modules(std::vector<int64_t> outs, float dropout) {
  SCOPED_TRACE("members " + std::to_string(outs.size()) + ", dropout " + std::to_string(dropout));
  auto ops = make_cpu_ops();
  const int64_t T = 13, in = 40, r = 4, n = int64_t(outs.size());
  StackCase one(T, in, r, outs, dropout, 5), stacked(T, in, r, outs, dropout, 5);  // same values
  F32 u_one({T, n * r}), u_stacked({T, n * r}), xd({T, in}), du_one({T, r}), du_stacked({T, n * r});
  for (int j = 0; j < n; ++j) {  // the unstacked path: module by module, its u in its own columns
    Tensor u = u_one.t.cols(j * r, (j + 1) * r);
    lora_forward(*ops, one.s.m[size_t(j)], one.x.t, u, one.ys[size_t(j)], xd.t);
  }
  for (int j = 0; j < n; ++j)
    lora_backward(*ops, one.s.m[size_t(j)], one.x.t, u_one.t.cols(j * r, (j + 1) * r), one.dys[size_t(j)], one.dx.t,
                  du_one.t, xd.t);
  lora_stack_forward(*ops, stacked.s, stacked.x.t, u_stacked.t, stacked.ys.data(), xd.t);
  lora_stack_backward(*ops, stacked.s, stacked.x.t, u_stacked.t, stacked.dys.data(), stacked.dx.t, du_stacked.t,
                      xd.t);
  EXPECT_EQ(u_stacked.values(), u_one.values());
  EXPECT_EQ(stacked.y.values(), one.y.values());
  EXPECT_EQ(stacked.dA.values(), one.dA.values());
  for (int j = 0; j < n; ++j) EXPECT_EQ(stacked.dB[size_t(j)]->values(), one.dB[size_t(j)]->values()) << j;
  if (n == 1 || dropout > 0) {
    EXPECT_EQ(stacked.dx.values(), one.dx.values());
    return;
  }
  for (size_t i = 0; i < one.dx.size(); ++i)
    ASSERT_NEAR(stacked.dx[i], one.dx[i], 4e-7f * (1.0f + std::fabs(one.dx[i]))) << i;
}

TEST(LoraStack, EqualsModuleByModuleFullAndPartialGroups) {
  expect_stack_equals_modules({16, 8, 8}, 0.0f);  // q, k, v (GQA: k and v narrower)
  expect_stack_equals_modules({16, 8}, 0.0f);     // q, v only
  expect_stack_equals_modules({24, 24}, 0.0f);    // gate, up
  expect_stack_equals_modules({40}, 0.0f);        // o or down: a group of one
}

TEST(LoraStack, WithDropoutEachModuleKeepsItsOwnMask) {
  expect_stack_equals_modules({16, 8, 8}, 0.25f);
  expect_stack_equals_modules({24, 24}, 0.1f);
}

// The forward's A projections through Ops::lora_a_dropout (one call per stack, the masks applied where x is read)
// against the path before it (QSFT_LORA_FUSED_DROPOUT=0: each member's dropout into the scratch, then its GEMM):
// u, y and, through the unchanged backward, dA, dB and dx bit for bit.
void expect_fused_dropout_equals_unfused(std::vector<int64_t> outs, float dropout) {
  SCOPED_TRACE("members " + std::to_string(outs.size()) + ", dropout " + std::to_string(dropout));
  auto ops = make_cpu_ops();
  const int64_t T = 11, in = 24, r = 4, n = int64_t(outs.size());
  StackCase fused(T, in, r, outs, dropout, 9), unfused(T, in, r, outs, dropout, 9);
  F32 u_fused({T, n * r}), u_unfused({T, n * r}), xd({T, in}), du({T, n * r});
  auto run = [&](StackCase& c, F32& u, const char* env) {
    setenv("QSFT_LORA_FUSED_DROPOUT", env, 1);
    lora_stack_forward(*ops, c.s, c.x.t, u.t, c.ys.data(), xd.t);
    lora_stack_backward(*ops, c.s, c.x.t, u.t, c.dys.data(), c.dx.t, du.t, xd.t);
    unsetenv("QSFT_LORA_FUSED_DROPOUT");
  };
  run(unfused, u_unfused, "0");
  run(fused, u_fused, "1");
  EXPECT_EQ(u_fused.values(), u_unfused.values());
  EXPECT_EQ(fused.y.values(), unfused.y.values());
  EXPECT_EQ(fused.dA.values(), unfused.dA.values());
  EXPECT_EQ(fused.dx.values(), unfused.dx.values());
  for (int j = 0; j < n; ++j) EXPECT_EQ(fused.dB[size_t(j)]->values(), unfused.dB[size_t(j)]->values()) << j;
  // and the masks are in effect: with dropout, u differs from the undropped x A^T
  if (dropout == 0.0f) return;
  F32 plain({T, n * r});
  ops->gemm(Mat::of(fused.x.t), false, Mat::of(fused.A.t), true, Mat::of(plain.t), 1.0f, 0.0f);
  EXPECT_NE(plain.values(), u_fused.values());
}

// Written instead of added (the model's LoRA-first order: the base GEMM then adds onto the outputs): y_j and dx
// from random contents equal, bit for bit, what adding onto zeros gives, on the fused and the unfused paths.
void expect_written_equals_added_to_zero(std::vector<int64_t> outs, float dropout, const char* fused_env) {
  SCOPED_TRACE("members " + std::to_string(outs.size()) + ", dropout " + std::to_string(dropout) + ", fused " +
               fused_env);
  setenv("QSFT_LORA_FUSED_DROPOUT", fused_env, 1);
  auto ops = make_cpu_ops();
  const int64_t T = 11, in = 24, r = 4, n = int64_t(outs.size());
  StackCase added(T, in, r, outs, dropout, 12), written(T, in, r, outs, dropout, 12);
  F32 u({T, n * r}), xd({T, in}), du({T, n * r});
  added.y.set(std::vector<float>(added.y.size(), 0.0f));
  added.dx.set(std::vector<float>(added.dx.size(), 0.0f));
  lora_stack_forward(*ops, added.s, added.x.t, u.t, added.ys.data(), xd.t);
  lora_stack_backward(*ops, added.s, added.x.t, u.t, added.dys.data(), added.dx.t, du.t, xd.t);
  lora_stack_forward(*ops, written.s, written.x.t, u.t, written.ys.data(), xd.t, false);
  lora_stack_backward(*ops, written.s, written.x.t, u.t, written.dys.data(), written.dx.t, du.t, xd.t, false);
  unsetenv("QSFT_LORA_FUSED_DROPOUT");
  EXPECT_EQ(written.y.values(), added.y.values());
  EXPECT_EQ(written.dx.values(), added.dx.values());
  EXPECT_EQ(written.dA.values(), added.dA.values()) << "the parameter gradients still accumulate";
}

TEST(LoraStack, WrittenOutputsEqualAddedToZero) {
  for (const char* fused : {"1", "0"}) {
    expect_written_equals_added_to_zero({16, 8, 8}, 0.0f, fused);
    expect_written_equals_added_to_zero({16, 8, 8}, 0.25f, fused);
    expect_written_equals_added_to_zero({24, 24}, 0.1f, fused);
    expect_written_equals_added_to_zero({40}, 0.0f, fused);
  }
}

TEST(LoraStack, FusedDropoutEqualsDropoutThenGemm) {
  expect_fused_dropout_equals_unfused({16, 8, 8}, 0.05f);
  expect_fused_dropout_equals_unfused({24, 24}, 0.5f);
  expect_fused_dropout_equals_unfused({40}, 0.25f);
  expect_fused_dropout_equals_unfused({16, 8}, 0.0f);
}

}  // namespace
}  // namespace qsft::test
