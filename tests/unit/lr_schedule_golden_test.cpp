// Learning-rate schedules against transformers: tests/data/lr_schedule_golden.json holds, per case, the arguments
// a Trainer passes to get_scheduler (type, learning rate, warmup and total steps, lr_scheduler_kwargs) and the rate
// of every step (tools/make_lr_schedule_golden.py). The same arguments, read by our config parser with
// transformers' names, must give the same doubles. Also: the kwargs each schedule takes, with one clear error.
#include <simdjson.h>

#include "engine/base/error.h"
#include "engine/train/lr_schedule.h"
#include "engine/train/train_config.h"
#include "test_util.h"

namespace qsft::test {
namespace {

const std::string kHead =
    R"({"model": "m", "data": {"train_files": ["d.jsonl"]}, "output_dir": "out", "finetuning_type": "lora", )";

TrainingOptions training(const std::string& training_json) {
  return parse_train_config(kHead + R"("training": )" + training_json + "}", "/cfg/run.json").training;
}

std::string error_of(const std::string& training_json) {
  try {
    training(training_json);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(LrScheduleGolden, EveryRateEqualsTransformers) {
  const std::string text = read_file(repo_testdata() / "lr_schedule_golden.json");
  simdjson::dom::parser parser;
  simdjson::dom::element root = parser.parse(text);
  int cases = 0;
  for (simdjson::dom::element c : root["cases"].get_array()) {
    SCOPED_TRACE(std::string(std::string_view(c["name"])));
    const int64_t total = int64_t(c["total_steps"]);
    const std::string json = R"({"lr_scheduler_type": )" + simdjson::minify(c["lr_scheduler_type"]) +
                             R"(, "learning_rate": )" + simdjson::minify(c["learning_rate"]) + R"(, "warmup_steps": )" +
                             simdjson::minify(c["warmup_steps"]) + R"(, "lr_scheduler_kwargs": )" +
                             simdjson::minify(c["lr_scheduler_kwargs"]) + "}";
    const LrSchedule s = lr_schedule_for(training(json), total);
    int64_t k = 0;
    for (simdjson::dom::element r : c["rates"].get_array()) {
      EXPECT_EQ(s.at(k), double(r)) << "step " << k;
      ++k;
    }
    EXPECT_EQ(k, total + 2);
    ++cases;
  }
  EXPECT_GE(cases, 15);
}

TEST(LrScheduleKwargs, EachScheduleTakesTransformersArguments) {
  EXPECT_NE(
      error_of(R"({"lr_scheduler_type": "cosine_with_min_lr"})")
          .find("missing key \"training.lr_scheduler_kwargs.min_lr\" or \"training.lr_scheduler_kwargs.min_lr_rate\""),
      std::string::npos);
  EXPECT_NE(error_of(R"({"lr_scheduler_type": "cosine_with_min_lr",
                         "lr_scheduler_kwargs": {"min_lr": 1e-6, "min_lr_rate": 0.1}})")
                .find("set only one of them"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"lr_scheduler_type": "warmup_stable_decay"})")
                .find("missing key \"training.lr_scheduler_kwargs.num_decay_steps\""),
            std::string::npos);
  // A kwarg of another schedule names the key, the type and what it takes.
  const std::string e = error_of(R"({"lr_scheduler_kwargs": {"min_lr": 1e-6}, "lr_scheduler_type": "cosine"})");
  EXPECT_NE(e.find("/cfg/run.json"), std::string::npos) << e;
  EXPECT_NE(e.find("key \"training.lr_scheduler_kwargs.min_lr\" is not an argument of lr_scheduler_type \"cosine\" "
                   "(it takes num_cycles)"),
            std::string::npos)
      << e;
  EXPECT_NE(error_of(R"({"lr_scheduler_kwargs": {"num_cycles": 1}})").find("(it takes none)"), std::string::npos);
  EXPECT_NE(error_of(R"({"lr_scheduler_kwargs": {"min_lr_rat": 0.1}})")
                .find("unknown key \"training.lr_scheduler_kwargs.min_lr_rat\" (did you mean "
                      "\"training.lr_scheduler_kwargs.min_lr_rate\"?)"),
            std::string::npos);
  EXPECT_NE(
      error_of(R"({"lr_scheduler_type": "warmup_stable_decay",
                         "lr_scheduler_kwargs": {"num_decay_steps": 3, "decay_type": "exp"}})")
          .find("key \"training.lr_scheduler_kwargs.decay_type\" is \"exp\"; valid values: linear, cosine, 1-sqrt"),
      std::string::npos);
  EXPECT_EQ(error_of(R"({"lr_scheduler_type": "linear", "lr_scheduler_kwargs": null})"), "");
}

TEST(Optim, TransformersNamesAndAliases) {
  EXPECT_EQ(training("{}").optim, "adamw_torch");
  EXPECT_EQ(training(R"({"optim": "adamw_torch_fused"})").optim, "adamw_torch");  // the same math
  EXPECT_EQ(training(R"({"optim": "adamw_8bit"})").optim, "adamw_8bit");
  EXPECT_EQ(training(R"({"optim": "adamw_bnb_8bit"})").optim, "adamw_8bit");  // transformers' alias
  EXPECT_NE(
      error_of(R"({"optim": "adafactor"})")
          .find("key \"training.optim\" is \"adafactor\"; valid values: adamw_torch, adamw_torch_fused, adamw_8bit"),
      std::string::npos);
}

}  // namespace
}  // namespace qsft::test
