// The trainer's parts: learning-rate schedules (transformers' formulas), the TensorBoard event file (read back,
// CRCs checked) and checkpoints (round trip, pruning, leftovers of a crash).
#include <cmath>
#include <fstream>
#include <memory>

#include "engine/base/error.h"
#include "engine/dist/comm.h"
#include "engine/io/model_config.h"
#include "engine/io/safetensors.h"
#include "engine/train/adamw.h"
#include "engine/train/checkpoint.h"
#include "engine/train/lr_schedule.h"
#include "engine/train/tensorboard.h"
#include "test_util.h"

namespace qsft::test {
namespace {

namespace fs = std::filesystem;

TEST(LrSchedule, MatchesTransformersFormulas) {
  LrSchedule s{"cosine", 1e-3, 10, 110, {}};
  EXPECT_EQ(s.at(0), 0.0);  // warmup starts from zero
  EXPECT_DOUBLE_EQ(s.at(5), 0.5e-3);
  EXPECT_DOUBLE_EQ(s.at(10), 1e-3);      // peak after warmup
  EXPECT_NEAR(s.at(60), 0.5e-3, 1e-15);  // half way down the half cosine
  EXPECT_NEAR(s.at(110), 0.0, 1e-18);
  LrSchedule lin{"linear", 1e-3, 0, 100, {}};
  EXPECT_DOUBLE_EQ(lin.at(0), 1e-3);
  EXPECT_DOUBLE_EQ(lin.at(25), 0.75e-3);
  LrSchedule cw{"constant_with_warmup", 2e-4, 4, 100, {}};
  EXPECT_DOUBLE_EQ(cw.at(2), 1e-4);
  EXPECT_DOUBLE_EQ(cw.at(99), 2e-4);
  EXPECT_DOUBLE_EQ((LrSchedule{"constant", 3e-4, 10, 100, {}}.at(0)), 3e-4);  // constant ignores warmup
}

TEST(LrSchedule, WarmupStepsAsTransformersCountsThem) {
  EXPECT_EQ(warmup_steps_for(0, 0.03, 100), 3);   // v4 warmup_ratio: ceil
  EXPECT_EQ(warmup_steps_for(0.03, 0, 100), 3);   // v5: warmup_steps below 1 is a ratio
  EXPECT_EQ(warmup_steps_for(0.031, 0, 100), 4);  // ceil(3.1)
  EXPECT_EQ(warmup_steps_for(2.7, 0.5, 100), 2);  // a count is truncated and wins over the ratio
  EXPECT_EQ(warmup_steps_for(0, 0, 100), 0);
}

TEST(TensorBoard, Crc32cKnownValue) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);  // the CRC-32C check value
}

TEST(TensorBoard, ScalarsReadBack) {
  const ScopedTempDir dir("tb");
  fs::path file;
  {
    TensorBoardWriter w(dir);
    w.scalar("train/loss", 2.5f, 1);
    w.scalar("train/loss", 1.25f, 2);
    w.scalar("eval/loss", 3.0f, 2);
    file = w.path();
  }
  std::vector<ScalarEvent> ev = read_tensorboard_scalars(file);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0].tag, "train/loss");
  EXPECT_EQ(ev[0].value, 2.5f);
  EXPECT_EQ(ev[0].step, 1);
  EXPECT_EQ(ev[2].tag, "eval/loss");
  EXPECT_EQ(ev[2].step, 2);
  // A flipped byte is caught by the record CRC.
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(-6, std::ios::end);
  f.put('\x7f');
  f.close();
  EXPECT_THROW(read_tensorboard_scalars(file), InputError);
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg_ = small_qwen2_config();
    lora_.r = 2;
    lora_.set_targets({"all-linear"}, "test");
    layout_ = LoraLayout(cfg_, lora_);
  }
  Checkpoint make(int64_t step) const {
    Checkpoint ck;
    ck.state.global_step = step;
    ck.state.log_loss_sum = 1.5;
    ck.state.log_steps = 3;
    ck.state.num_tokens = 12345;
    ck.lora = layout_.init_params(step);
    ck.exp_avg.assign(size_t(layout_.num_params()), 0.25f * float(step));
    ck.exp_avg_sq.assign(size_t(layout_.num_params()), 0.5f);
    return ck;
  }
  Qwen2Config cfg_;
  LoraConfig lora_;
  LoraLayout layout_;
};

TEST_F(CheckpointTest, RoundTripAndPruning) {
  const ScopedTempDir out("ckpt");
  for (int64_t s : {2, 4, 6}) save_checkpoint(out, layout_, make(s), "/base", 2);
  EXPECT_FALSE(fs::exists(out / "checkpoint-2"));  // save_total_limit 2
  ASSERT_EQ(latest_checkpoint(out), out / "checkpoint-6");
  Checkpoint back = load_checkpoint(out / "checkpoint-6", layout_);
  Checkpoint want = make(6);
  EXPECT_EQ(back.state.global_step, 6);
  EXPECT_EQ(back.state.log_loss_sum, 1.5);
  EXPECT_EQ(back.state.num_tokens, 12345);
  EXPECT_EQ(back.lora, want.lora);
  EXPECT_EQ(back.exp_avg, want.exp_avg);
  EXPECT_TRUE(fs::exists(out / "checkpoint-6" / "adapter_config.json"));
}

TEST_F(CheckpointTest, LeftoversOfACrashedWriteAreIgnoredAndRemovedOnRequest) {
  const ScopedTempDir out("ckpt_crash");
  save_checkpoint(out, layout_, make(2), "/base", 0);
  const fs::path leftover = out / ".tmp-checkpoint-4.12345";  // a write killed half way
  fs::create_directories(leftover);
  std::ofstream(leftover / "adapter_model.safetensors") << "partial";
  EXPECT_EQ(latest_checkpoint(out), out / "checkpoint-2");
  EXPECT_TRUE(fs::exists(leftover));  // a reader leaves it: it may be a running write
  remove_checkpoint_temporaries(out);
  EXPECT_FALSE(fs::exists(leftover));
}

TEST_F(CheckpointTest, AnotherLoraConfigurationIsAClearError) {
  const ScopedTempDir out("ckpt_other");
  save_checkpoint(out, layout_, make(2), "/base", 0);
  LoraConfig other = lora_;
  other.r = 4;
  EXPECT_THROW(load_checkpoint(out / "checkpoint-2", LoraLayout(cfg_, other)), InputError);
}

// A checkpoint written before LoRA stacked the A's of a group holds the moments in the unstacked order (each
// module's A then B) and optimizer.safetensors has no lora_param_order: adamw_torch's moments are moved into the
// stacked order; adamw_8bit's (blocks of 256 across parameters) cannot be and are refused, naming the file.
TEST_F(CheckpointTest, MomentsOfTheUnstackedOrderAreReorderedOr8bitRefused) {
  const ScopedTempDir out("ckpt_unstacked");
  Checkpoint ck = make(2);
  for (size_t i = 0; i < ck.exp_avg.size(); ++i) {
    ck.exp_avg[i] = float(i);
    ck.exp_avg_sq[i] = 0.5f * float(i);
  }
  save_checkpoint(out, layout_, ck, "/base", 0);
  const int64_t P = layout_.num_params(), r = lora_.r;
  std::vector<float> m(size_t(P), -1.0f), v(size_t(P), -1.0f);  // as the unstacked layout placed them
  for (const LoraSlot& s : layout_.slots()) {
    const int64_t na = r * s.in, nb = s.out * r, a = s.unstacked_a_offset;
    for (int64_t i = 0; i < na; ++i) m[size_t(a + i)] = ck.exp_avg[size_t(s.a_offset + i)];
    for (int64_t i = 0; i < nb; ++i) m[size_t(a + na + i)] = ck.exp_avg[size_t(s.b_offset + i)];
  }
  for (int64_t i = 0; i < P; ++i) v[size_t(i)] = 0.5f * m[size_t(i)];
  ASSERT_NE(m, ck.exp_avg);  // all-linear: the orders differ
  const fs::path opt = out / "checkpoint-2" / "optimizer.safetensors";
  write_safetensors(opt, {{"exp_avg", DType::F32, {P}, m.data()}, {"exp_avg_sq", DType::F32, {P}, v.data()}});
  const Checkpoint back = load_checkpoint(out / "checkpoint-2", layout_);
  EXPECT_EQ(back.exp_avg, ck.exp_avg);
  EXPECT_EQ(back.exp_avg_sq, ck.exp_avg_sq);
  const int64_t B = (P + 255) / 256;
  std::vector<uint8_t> codes(size_t(P), 7);
  std::vector<float> absmax(size_t(B), 1.0f);
  write_safetensors(opt, {{"exp_avg", DType::U8, {P}, codes.data()},
                          {"exp_avg_sq", DType::U8, {P}, codes.data()},
                          {"exp_avg_absmax", DType::F32, {B}, absmax.data()},
                          {"exp_avg_sq_absmax", DType::F32, {B}, absmax.data()}});
  const std::string msg = input_error_of([&] { load_checkpoint(out / "checkpoint-2", layout_); });
  EXPECT_NE(msg.find(opt.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("adamw_8bit state written before"), std::string::npos) << msg;
}

// optim adamw_8bit: the codes and absmax go through optimizer.safetensors (U8 and F32) and the next step after a
// load is the same bits as without the round trip; an adamw_torch run refuses that state with a clear error.
TEST_F(CheckpointTest, AdamW8bitStateRoundTripsBitExactly) {
  const ScopedTempDir out("ckpt_8bit");
  auto ops = make_cpu_ops();
  const int64_t P = layout_.num_params();
  Arena a(*ops, 4 * (size_t(P) * 4 + Arena::kAlign));
  Tensor p = a.take(DType::F32, {P}), q = a.take(DType::F32, {P}), g = a.take(DType::F32, {P});
  const std::vector<float> p0 = layout_.init_params(5);
  std::vector<float> grad(static_cast<size_t>(P));
  for (int64_t i = 0; i < P; ++i) grad[size_t(i)] = 1e-3f * float(i % 97) - 0.04f;
  ops->copy_to_device(p.data, p0.data(), p0.size() * 4);
  ops->copy_to_device(g.data, grad.data(), grad.size() * 4);
  const AdamWSettings s{1e-3, 0.9, 0.999, 1e-8, 0.01};
  AdamWOptimizer first(*ops, P, "adamw_8bit");
  for (int i = 0; i < 2; ++i) first.step(p, g, s, 1e-3);
  Checkpoint ck = make(2);
  ck.exp_avg.clear();
  ck.exp_avg_sq.clear();
  Tensor scratch = a.take(DType::F32, {P});  // the gather buffer (the spent gradients in the trainer)
  first.save(ck, *make_comm(Launch{}, *ops), scratch);
  save_checkpoint(out, layout_, ck, "/base", 0);
  const Checkpoint back = load_checkpoint(out / "checkpoint-2", layout_);
  EXPECT_EQ(back.exp_avg_codes, ck.exp_avg_codes);
  EXPECT_EQ(back.exp_avg_sq_absmax, ck.exp_avg_sq_absmax);
  EXPECT_TRUE(back.exp_avg.empty());
  AdamWOptimizer resumed(*ops, P, "adamw_8bit");
  resumed.load(back);
  ops->copy(q, p);
  first.step(p, g, s, 1e-3);
  resumed.step(q, g, s, 1e-3);
  std::vector<float> a3(static_cast<size_t>(P)), b3(static_cast<size_t>(P));
  ops->copy_to_host(a3.data(), p.data, a3.size() * 4);
  ops->copy_to_host(b3.data(), q.data, b3.size() * 4);
  EXPECT_EQ(a3, b3);
  AdamWOptimizer fp32(*ops, P);
  EXPECT_NE(input_error_of([&] { fp32.load(back); }).find("training.optim"), std::string::npos);
}

// Full fine-tuning's two groups ([0, decay_end) with weight decay, the rest without) under ZeRO-1: each rank's
// optimizer steps its shard's part of both groups, and the shards together give the one-rank update bit for bit
// (the boundary falls inside a shard), for adamw_torch and for adamw_8bit (shards on blocks of 256, the boundary
// inside a block).
class DecayGroups : public ::testing::TestWithParam<std::string> {
 protected:
  static constexpr int64_t P = 1000, kDecayEnd = 613;
  // The parameters after 3 steps over `world` ranks (shards aligned as the trainer's Comm aligns them).
  std::vector<float> run(int world, int64_t decay_end, double weight_decay) {
    auto ops = make_cpu_ops();
    Arena a(*ops, 2 * (size_t(P) * 4 + Arena::kAlign));
    Tensor p = a.take(DType::F32, {P}), g = a.take(DType::F32, {P});
    std::vector<float> host(static_cast<size_t>(P), 0.5f), grad(static_cast<size_t>(P));
    for (int64_t i = 0; i < P; ++i) grad[size_t(i)] = 1e-3f * float(i % 97) - 0.04f;
    ops->copy_to_device(p.data, host.data(), host.size() * 4);
    ops->copy_to_device(g.data, grad.data(), grad.size() * 4);
    const AdamWSettings s{1e-3, 0.9, 0.999, 1e-8, weight_decay};
    std::vector<std::unique_ptr<AdamWOptimizer>> ranks;
    for (int r = 0; r < world; ++r) {
      const ShardRange shard = shard_of(P, world, r, AdamWOptimizer::shard_alignment(GetParam()));
      ranks.push_back(std::make_unique<AdamWOptimizer>(*ops, P, shard, GetParam(), decay_end));
    }
    for (int step = 0; step < 3; ++step)
      for (auto& r : ranks) r->step(p, g, s, 1e-2);
    ops->copy_to_host(host.data(), p.data, host.size() * 4);
    return host;
  }
};

TEST_P(DecayGroups, SplitAcrossShardsAsOneRank) {
  const std::vector<float> one = run(1, kDecayEnd, 0.1);
  EXPECT_EQ(run(3, kDecayEnd, 0.1), one);
  EXPECT_EQ(run(8, kDecayEnd, 0.1), one);  // adamw_8bit: 4 blocks over 8 ranks, half of them own none
  EXPECT_NE(one[0], one[679]);             // the same gradient (i % 97 == 0), decayed or not: the groups differ
  // Decay touches the parameters only: [0, decay_end) as with decay everywhere, the rest as with none.
  const std::vector<float> all = run(1, P, 0.1), none = run(1, P, 0.0);
  for (int64_t i = 0; i < P; ++i) ASSERT_EQ(one[size_t(i)], i < kDecayEnd ? all[size_t(i)] : none[size_t(i)]) << i;
}

INSTANTIATE_TEST_SUITE_P(Optim, DecayGroups, ::testing::Values("adamw_torch", "adamw_8bit"));

}  // namespace
}  // namespace qsft::test
