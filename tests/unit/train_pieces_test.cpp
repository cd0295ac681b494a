// The trainer's parts: learning-rate schedules (transformers' formulas), the TensorBoard event file (read back,
// CRCs checked) and checkpoints (round trip, pruning, leftovers of a crash).
#include <cmath>
#include <fstream>

#include "engine/base/error.h"
#include "engine/io/model_config.h"
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
  fs::path dir = fresh_temp_dir("tb");
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
  fs::path out = fresh_temp_dir("ckpt");
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
  fs::path out = fresh_temp_dir("ckpt_crash");
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
  fs::path out = fresh_temp_dir("ckpt_other");
  save_checkpoint(out, layout_, make(2), "/base", 0);
  LoraConfig other = lora_;
  other.r = 4;
  EXPECT_THROW(load_checkpoint(out / "checkpoint-2", LoraLayout(cfg_, other)), InputError);
}

}  // namespace
}  // namespace qsft::test
