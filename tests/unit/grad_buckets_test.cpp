// Gradient buckets (engine/dist/grad_buckets.h): the key rule for when a gradient is final holds for the real
// backward (LoRA and full fine-tuning, tied and untied embeddings, Qwen3's head norms); the buckets cover the flat
// buffer once, within the cap, each started only after all of it is final; GradReducer starts each bucket once
// per step, in order, and waits before the step goes on.
#include <cstdlib>
#include <cstring>

#include "engine/dist/grad_buckets.h"
#include "fixture.h"

namespace qsft::test {
namespace {

TEST(GradBuckets, FinalFromTheStateDictKey) {
  EXPECT_EQ(grad_final_from("base_model.model.model.layers.2.mlp.down_proj.lora_B.weight", 3), 2);
  EXPECT_EQ(grad_final_from("model.layers.0.self_attn.q_proj.bias", 3), 0);
  EXPECT_EQ(grad_final_from("model.layers.12.input_layernorm.weight", 28), 12);
  EXPECT_EQ(grad_final_from("lm_head.weight", 3), 3);
  EXPECT_EQ(grad_final_from("model.norm.weight", 3), 3);
  EXPECT_EQ(grad_final_from("model.embed_tokens.weight", 3), -1);
  // not a layer this model has, or no layer number: final only at the end (safe)
  EXPECT_EQ(grad_final_from("model.layers.3.mlp.up_proj.weight", 3), -1);
  EXPECT_EQ(grad_final_from("model.layers.x.mlp.up_proj.weight", 3), -1);
  EXPECT_EQ(grad_final_from("model.layers.1", 3), -1);
}

// The fixture's trainable layout: LoRA's adapters or every weight.
struct Case {
  std::string fixture;
  bool full;
};
std::string case_name(const ::testing::TestParamInfo<Case>& i) {
  return i.param.fixture + (i.param.full ? "_full" : "_lora");
}
void PrintTo(const Case& c, std::ostream* os) { *os << c.fixture << (c.full ? " full" : " LoRA"); }

class GradBucketsOf : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(repo_testdata() / "fixtures" / GetParam().fixture / "golden.json"))
      GTEST_SKIP() << "skipped: tests/data/fixtures/" << GetParam().fixture << " is absent";
    f_ = load_fixture(GetParam().fixture);
    ModelOptions opts;
    opts.max_tokens = f_.batch.num_tokens();
    opts.full_finetuning = GetParam().full;
    model_ = std::make_unique<Qwen2Model>(*ops_, f_.config, f_.lora, opts);
    model_->load_weights((f_.dir / "model").string());
    if (!GetParam().full) model_->set_lora_params(f_.lora_init);
  }
  int layers() const { return f_.config.num_hidden_layers; }
  const ParamLayout& layout() const { return model_->param_layout(); }

  Fixture f_;
  std::unique_ptr<Ops> ops_ = make_cpu_ops();
  std::unique_ptr<Qwen2Model> model_;
};

// Snapshots of the gradients at each GradsFinalFn call of one backward, then the final gradients: every segment's
// gradient at the call for its grad_final_from equals the final one bit for bit, the calls come in the order
// L, L-1, ..., 0, -1, and each call finalises something that was still changing at the call before.
TEST_P(GradBucketsOf, AGradientIsFinalWhenTheKeyRuleSaysSo) {
  std::vector<int> calls;
  std::vector<std::vector<float>> at_call;
  const GradsFinalFn record = [&](int layer) {
    calls.push_back(layer);
    at_call.push_back(model_->lora_grads());
  };
  model_->zero_grads();
  model_->forward_backward(f_.batch, 1.0f / float(f_.batch.num_targets()), 5, &record);
  const std::vector<float> final_grads = model_->lora_grads();
  std::vector<int> want;
  for (int l = layers(); l >= -1; --l) want.push_back(l);
  ASSERT_EQ(calls, want);
  auto same = [&](const std::vector<float>& g, const ParamSegment& s) {
    return std::memcmp(g.data() + s.offset, final_grads.data() + s.offset, size_t(s.numel()) * 4) == 0;
  };
  std::vector<bool> changes_at(calls.size(), false);  // some segment final at call i changed after call i - 1
  for (const ParamSegment& s : layout().segments()) {
    const size_t i = size_t(layers() - grad_final_from(s.name, layers()));  // its call's index
    EXPECT_TRUE(same(at_call[i], s)) << s.name << " changes after call " << calls[i];
    if (i > 0 && !same(at_call[i - 1], s)) changes_at[i] = true;
  }
  for (size_t i = 1; i < calls.size(); ++i) {
    if (!GetParam().full && calls[i] < 0) continue;  // LoRA has no embedding: nothing is final at -1 alone
    EXPECT_TRUE(changes_at[i]) << "nothing became final at call " << calls[i];
  }
}

// For caps from one float to more than the buffer: every element in exactly one bucket, at most cap floats per
// bucket (all full but the last), ranges ascending and not touching, buckets in backward order, each started only
// when every element of it is final.
TEST_P(GradBucketsOf, BucketsCoverTheBufferOnceAndStartWhenFinal) {
  const int64_t P = layout().num_params();
  std::vector<int> final_from(static_cast<size_t>(P));  // each element's
  for (const ParamSegment& s : layout().segments())
    std::fill_n(final_from.begin() + s.offset, s.numel(), grad_final_from(s.name, layers()));
  for (int64_t cap : {int64_t(1), int64_t(777), P / 5 + 3, P, 4 * P}) {
    const std::vector<GradBucket> buckets = plan_grad_buckets(layout(), layers(), cap * 4);
    std::vector<int> covered(static_cast<size_t>(P), 0);
    int previous = layers();
    for (size_t b = 0; b < buckets.size(); ++b) {
      const GradBucket& k = buckets[b];
      EXPECT_LE(k.final_from, previous);
      previous = k.final_from;
      int64_t n = 0, end = -1;
      for (const ShardRange& r : k.ranges) {
        EXPECT_GT(r.offset, end) << "ranges not ascending or touching";
        end = r.offset + r.count;
        n += r.count;
        for (int64_t i = r.offset; i < end; ++i) {
          covered[size_t(i)] += 1;
          ASSERT_GE(final_from[size_t(i)], k.final_from) << "element " << i << " is not final when its bucket starts";
        }
      }
      EXPECT_EQ(n, b + 1 < buckets.size() ? std::min(cap, P) : n) << "bucket " << b << " of cap " << cap;
      EXPECT_LE(n, cap);
    }
    EXPECT_EQ(int64_t(buckets.size()), (P + cap - 1) / cap);
    EXPECT_EQ(std::count(covered.begin(), covered.end(), 1), P) << "cap " << cap;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GradBucketsOf,
                         ::testing::Values(Case{"untied", false}, Case{"untied", true}, Case{"tied", false},
                                           Case{"tied", true}, Case{"qwen3", false}, Case{"qwen3", true}),
                         case_name);

// A Comm that records what is started and waited for.
class RecordingComm final : public Comm {
 public:
  RecordingComm() : Comm(Launch{}) {}
  std::string name() const override { return "recording"; }
  void reduce_ranges(Tensor&, std::span<const ShardRange>) override { ADD_FAILURE() << "reduce_ranges"; }
  void start_reduce(Tensor&, std::span<const ShardRange> ranges) override {
    log.push_back("start " + std::to_string(ranges.front().offset));
  }
  void wait_reduces() override { log.push_back("wait"); }
  void all_reduce(Tensor&) override {}
  void all_gather(Tensor&) override {}
  void broadcast(Tensor&, int) override {}
  void barrier() override {}
  void all_reduce_host(std::span<double>) override {}
  std::vector<std::string> log;
};

TEST(GradReducer, StartsEachBucketOnceWhenFinalThenWaits) {
  RecordingComm comm;
  Tensor grads;
  // buckets final from the head (2 layers), layer 1, layer 1, the end
  GradReducer reducer(comm, grads, {{2, {{0, 1}}}, {1, {{1, 1}}}, {1, {{2, 1}}}, {-1, {{3, 1}}}});
  for (int step = 0; step < 2; ++step) {
    comm.log.clear();
    reducer.final_from(2);
    EXPECT_EQ(comm.log, std::vector<std::string>({"start 0"}));
    reducer.final_from(1);
    reducer.final_from(0);
    EXPECT_EQ(comm.log, std::vector<std::string>({"start 0", "start 1", "start 2"}));
    reducer.finish();  // the embedding's bucket, then the wait
    EXPECT_EQ(comm.log, std::vector<std::string>({"start 0", "start 1", "start 2", "start 3", "wait"}));
  }
  comm.log.clear();
  reducer.finish();  // no backward told it anything: everything starts here, in order
  EXPECT_EQ(comm.log, std::vector<std::string>({"start 0", "start 1", "start 2", "start 3", "wait"}));
}

TEST(GradBuckets, ForcedByTheEnvironmentElsePaidForOnly) {
  RecordingComm comm;  // a world of one that does not overlap
  ::unsetenv("QSFT_GRAD_BUCKETS");
  EXPECT_FALSE(use_grad_buckets(comm, int64_t(1) << 40));
  ::setenv("QSFT_GRAD_BUCKETS", "1", 1);
  EXPECT_TRUE(use_grad_buckets(comm, 4));
  ::setenv("QSFT_GRAD_BUCKETS", "0", 1);
  EXPECT_FALSE(use_grad_buckets(comm, int64_t(1) << 40));
  ::setenv("QSFT_GRAD_BUCKETS", "yes", 1);
  EXPECT_THROW(use_grad_buckets(comm, 4), InputError);
  ::unsetenv("QSFT_GRAD_BUCKETS");
}

}  // namespace
}  // namespace qsft::test
