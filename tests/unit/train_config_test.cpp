// cfg.json parsing: TRL names, --set overrides, and one clear error per bad key or value.
#include <fstream>

#include "engine/base/error.h"
#include "engine/train/config_overrides.h"
#include "engine/train/train_config.h"
#include "test_util.h"

namespace qsft::test {
namespace {

const std::string kMinimal = R"({"model": "m", "data": {"train_files": ["d.jsonl"]}, "output_dir": "out"})";

std::string error_of(const std::string& json) {
  try {
    parse_train_config(json, "/cfg/run.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(TrainConfig, DefaultsFollowTrlAndPathsResolveAgainstTheConfigFolder) {
  TrainConfig c = parse_train_config(kMinimal, "/cfg/run.json");
  EXPECT_EQ(c.model, "/cfg/m");
  EXPECT_EQ(c.output_dir, "/cfg/out");
  EXPECT_EQ(c.training.learning_rate, 2e-5);
  EXPECT_EQ(c.training.lr_scheduler_type, "linear");
  EXPECT_EQ(c.training.per_device_train_batch_size, 8);
  EXPECT_EQ(c.training.max_grad_norm, 1.0);
  EXPECT_EQ(c.lora.r, 8);
  EXPECT_EQ(c.lora.target_names().size(), 7u);  // all-linear
  EXPECT_EQ(c.device, "auto");
  EXPECT_TRUE(c.training.gradient_checkpointing_auto);
  EXPECT_TRUE(c.full_finetuning);  // no lora section: every weight is trained, as TRL without a peft_config
}

// ddp_bucket_cap_mb: transformers' name; null is DDP's 25 MiB; it must be positive.
TEST(TrainConfig, DdpBucketCapIsPositiveMiB) {
  const std::string head = R"({"model": "m", "data": {"train_files": ["d.jsonl"]}, "output_dir": "out", )";
  EXPECT_EQ(parse_train_config(kMinimal, "/cfg/run.json").training.ddp_bucket_cap_mb, 25);
  EXPECT_EQ(parse_train_config(head + R"("training": {"ddp_bucket_cap_mb": 0.5}})", "/cfg/run.json")
                .training.ddp_bucket_cap_mb,
            0.5);
  EXPECT_EQ(parse_train_config(head + R"("training": {"ddp_bucket_cap_mb": null}})", "/cfg/run.json")
                .training.ddp_bucket_cap_mb,
            25);
  EXPECT_NE(error_of(head + R"("training": {"ddp_bucket_cap_mb": 0}})").find("ddp_bucket_cap_mb"), std::string::npos);
}

// finetuning_type: LoRA with a lora section or "lora"; full without a section or with "full"; both is an error.
// Full fine-tuning refuses a 4-bit base; it takes adamw_8bit as LoRA does.
TEST(TrainConfig, FinetuningTypeFollowsTheLoraSection) {
  const std::string head = R"({"model": "m", "data": {"train_files": ["d"]}, "output_dir": "o")";
  EXPECT_FALSE(parse_train_config(head + R"(, "lora": {"r": 4}})", "/c.json").full_finetuning);
  EXPECT_FALSE(parse_train_config(head + R"(, "finetuning_type": "lora"})", "/c.json").full_finetuning);
  EXPECT_TRUE(parse_train_config(head + R"(, "finetuning_type": "full"})", "/c.json").full_finetuning);
  std::string e = error_of(head + R"(, "finetuning_type": "full", "lora": {"r": 4}})");
  EXPECT_NE(e.find("key \"finetuning_type\" is \"full\" but there is a \"lora\" section"), std::string::npos) << e;
  e = error_of(head + R"(, "finetuning_type": "qlora"})");
  EXPECT_NE(e.find("finetuning_type"), std::string::npos) << e;
  e = error_of(head + R"(, "load_in_4bit": true})");
  EXPECT_NE(e.find("key \"load_in_4bit\" must be false with full fine-tuning"), std::string::npos) << e;
  EXPECT_TRUE(parse_train_config(head + R"(, "training": {"optim": "adamw_8bit"}})", "/c.json").full_finetuning);
  EXPECT_TRUE(parse_train_config(head + R"(, "lora": {"r": 4}, "training": {"optim": "adamw_8bit"}})", "/c.json")
                  .training.optim == "adamw_8bit");
}

TEST(TrainConfig, GradientCheckpointingIsTrueFalseOrAuto) {
  auto with = [](const std::string& v) {
    return R"({"model": "m", "data": {"train_files": ["d"]}, "output_dir": "o", )"
           R"("training": {"gradient_checkpointing": )" +
           v + "}}";
  };
  const TrainingOptions on = parse_train_config(with("true"), "/c.json").training;
  EXPECT_TRUE(on.gradient_checkpointing && !on.gradient_checkpointing_auto);
  const TrainingOptions off = parse_train_config(with("false"), "/c.json").training;
  EXPECT_FALSE(off.gradient_checkpointing || off.gradient_checkpointing_auto);
  EXPECT_TRUE(parse_train_config(with(R"("auto")"), "/c.json").training.gradient_checkpointing_auto);
  EXPECT_NE(error_of(with(R"("always")")).find("key \"training.gradient_checkpointing\" is \"always\"; valid values: auto"),
            std::string::npos);
  EXPECT_NE(error_of(with("1")).find("key \"training.gradient_checkpointing\" must be true, false or \"auto\""),
            std::string::npos);
}

// embedding_on_host: a boolean, true by default (docs/cuda-backend.md); where the table lives does not change the
// results, so a resumed run may change it.
TEST(TrainConfig, EmbeddingOnHostIsABooleanTrueByDefault) {
  auto with = [](const std::string& v) {
    return R"({"model": "m", "data": {"train_files": ["d"]}, "output_dir": "o", "training": {"embedding_on_host": )" +
           v + "}}";
  };
  EXPECT_TRUE(parse_train_config(kMinimal, "/c.json").training.embedding_on_host);
  EXPECT_FALSE(parse_train_config(with("false"), "/c.json").training.embedding_on_host);
  EXPECT_NE(error_of(with(R"("no")")).find("training.embedding_on_host"), std::string::npos);
  const std::string before = parse_train_config(kMinimal, "/c.json").resolved_json;
  const std::string off = apply_overrides(kMinimal, {"training.embedding_on_host=false"}, "x");
  EXPECT_TRUE(resume_incompatible_keys(before, parse_train_config(off, "/c.json").resolved_json).empty());
}

TEST(TrainConfig, ReadsEverySection) {
  TrainConfig c = parse_train_config(
      R"({"model": "/abs/m", "data": {"train_files": ["d.jsonl"], "max_length": 512, "eval_split": 0.1},
          "output_dir": "o",
          "lora": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["q_proj", "v_proj"],
                   "use_rslora": true},
          "training": {"num_train_epochs": 3, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 4,
                       "learning_rate": 3e-4, "lr_scheduler_type": "cosine", "warmup_ratio": 0.03,
                       "weight_decay": 0.01, "adam_beta2": 0.95, "neftune_noise_alpha": 5, "seed": 7},
          "eval_steps": 50, "save_steps": 50, "save_total_limit": 3, "logging_steps": 1, "device": "cpu"})",
      "/cfg/run.json");
  EXPECT_EQ(c.model, "/abs/m");
  EXPECT_EQ(c.data.max_length, 512);
  EXPECT_EQ(c.lora.r, 16);
  EXPECT_FLOAT_EQ(c.lora.scaling(), 32.0f / 4.0f);  // rsLoRA: alpha / sqrt(r)
  EXPECT_EQ(c.lora.target_names(), (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_EQ(c.training.gradient_accumulation_steps, 4);
  EXPECT_EQ(c.training.lr_scheduler_type, "cosine");
  EXPECT_EQ(c.training.adamw.beta2, 0.95);
  EXPECT_EQ(c.training.neftune_noise_alpha, 5);
  EXPECT_EQ(c.training.seed, 7u);
  EXPECT_EQ(c.save_total_limit, 3);
  EXPECT_EQ(c.device, "cpu");
}

// Counts are range-checked as 64-bit integers before any narrowing: 2^32 used to become 0 (SIGFPE) and 2^32 - 1
// an endless loop (gradient_accumulation_steps), or an internal error (lora.r).
TEST(TrainConfig, HugeCountsAreErrorsNamingTheKey) {
  const std::string head = R"({"model": "m", "data": {"train_files": ["d"]}, "output_dir": "o", )";
  for (const char* key : {"gradient_accumulation_steps", "per_device_train_batch_size", "micro_batch_tokens"})
    for (const char* value : {"4294967296", "4294967295", "9223372036854775807"}) {
      const std::string e = error_of(head + R"("training": {")" + key + "\": " + value + "}}");
      EXPECT_NE(e.find(std::string("key \"training.") + key + "\" must be <= "), std::string::npos) << key << " " << e;
    }
  for (const char* value : {"4294967296", "4294967295", "65537"}) {
    const std::string e = error_of(head + R"("lora": {"r": )" + value + "}}");
    EXPECT_NE(e.find("key \"lora.r\" must be <= "), std::string::npos) << e;
  }
  for (const char* key : {"eval_steps", "save_steps", "logging_steps", "save_total_limit", "training.max_steps"}) {
    const std::string k = key;
    const std::string e = k.rfind("training.", 0) == 0
                              ? error_of(head + R"("training": {")" + k.substr(9) + "\": 9223372036854775807}}")
                              : error_of(head + "\"" + k + "\": 9223372036854775807}");
    EXPECT_NE(e.find("key \"" + k + "\" must be <= "), std::string::npos) << e;
  }
  // Numbers that become step counts: 1e300 epochs or warmup steps used to overflow the int64 conversion.
  for (const char* key : {"num_train_epochs", "warmup_steps"}) {
    const std::string e = error_of(head + R"("training": {")" + key + "\": 1e300}}");
    EXPECT_NE(e.find(std::string("key \"training.") + key + "\" must be <= "), std::string::npos) << e;
  }
  // The micro-batch the activations are sized for: batch x max_length tokens.
  EXPECT_NE(error_of(R"({"model": "m", "data": {"train_files": ["d"], "max_length": 4294967296}, "output_dir": "o",
                         "training": {"per_device_train_batch_size": 4}})")
                .find("data.max_length x training.per_device_train_batch_size must be <= "),
            std::string::npos);
  EXPECT_EQ(error_of(head + R"("training": {"gradient_accumulation_steps": 1024, "max_steps": 100000}})"), "");
}

TEST(TrainConfig, UnknownKeysNameTheNearestValidKey) {
  std::string e = error_of(R"({"model": "m", "data": {"train_files": ["d"]}, "output_dir": "o",
                               "training": {"learning_rat": 1e-4}})");
  EXPECT_NE(e.find("/cfg/run.json"), std::string::npos) << e;
  EXPECT_NE(e.find("training.learning_rat"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean \"training.learning_rate\"?"), std::string::npos) << e;
  e = error_of(R"({"model": "m", "data": {"train_files": ["d"]}, "output_dir": "o", "lora": {"alpha": 16}})");
  EXPECT_NE(e.find("valid keys: lora_alpha, lora_dropout, r, target_modules, use_rslora"), std::string::npos) << e;
  e = error_of(R"({"modle": "m"})");
  EXPECT_NE(e.find("did you mean \"model\"?"), std::string::npos) << e;
}

TEST(TrainConfig, BadValuesAreNamed) {
  auto with_training = [](const std::string& t) {
    return R"({"model": "m", "data": {"train_files": ["d"]}, "output_dir": "o", "training": )" + t + "}";
  };
  EXPECT_NE(error_of(with_training(R"({"learning_rate": "fast"})"))
                .find("key \"training.learning_rate\" must be a number, got a string"),
            std::string::npos);
  EXPECT_NE(error_of(with_training(R"({"lr_scheduler_type": "cosin"})")).find("valid values: linear, cosine"),
            std::string::npos);
  EXPECT_NE(error_of(with_training(R"({"warmup_ratio": 2})")).find("key \"training.warmup_ratio\" must be in [0, 1]"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"model": "m", "data": {"train_files": ["d"]}, "output_dir": "o",
                         "lora": {"target_modules": ["q_proj", "qkv"]}})")
                .find("unknown LoRA target module \"qkv\""),
            std::string::npos);
  EXPECT_NE(error_of(R"({"data": {"train_files": ["d"]}, "output_dir": "o"})").find("missing key \"model\""),
            std::string::npos);
  EXPECT_NE(error_of("{not json").find("invalid JSON"), std::string::npos);
  // counts are whole numbers >= 1 (0.5 used to reach a division by zero)
  EXPECT_NE(error_of(with_training(R"({"gradient_accumulation_steps": 0.5})"))
                .find("key \"training.gradient_accumulation_steps\" must be an integer"),
            std::string::npos);
  EXPECT_NE(error_of(with_training(R"({"per_device_train_batch_size": 0})"))
                .find("key \"training.per_device_train_batch_size\" must be >= 1"),
            std::string::npos);
  EXPECT_NE(error_of(with_training(R"({"warmup_steps": -3})")).find("must be >= 0"), std::string::npos);
  EXPECT_EQ(error_of(with_training(R"({"warmup_steps": 0.03})")), "");  // transformers 5: a ratio below 1
  EXPECT_NE(error_of(with_training(R"({"adam_beta2": 1.5})")).find("key \"training.adam_beta2\" must be in"),
            std::string::npos);
  EXPECT_NE(
      error_of(R"({"model": "", "data": {"train_files": ["d"]}, "output_dir": "o"})").find("key \"model\" is empty"),
      std::string::npos);
  EXPECT_NE(error_of(R"({"model": "m", "data": {"train_files": ["d"]}, "output_dir": "o", "eval_steps": 10})")
                .find("no eval data"),
            std::string::npos);
}

// Field templates scan as Python's str.format: a lone '}', an unclosed '{' or an empty "{}" is named at load time,
// not found record by record (with on_bad_record "skip" every record would have been dropped).
TEST(TrainConfig, MalformedFieldTemplatesAreNamed) {
  auto with_template = [](const std::string& key, const std::string& tmpl) {
    return R"({"model": "m", "output_dir": "o", "data": {"train_files": ["d"], "loss_mask": "all", ")" + key +
           R"(": ")" + tmpl + R"("}})";
  };
  EXPECT_NE(error_of(with_template("prompt_template", "Q: {Question}} A:"))
                .find("key \"data.prompt_template\": a lone '}' (write '}}' for a brace) in \"Q: {Question}} A:\""),
            std::string::npos);
  EXPECT_NE(error_of(with_template("completion_template", "{Response"))
                .find("key \"data.completion_template\": a '{' without a closing '}'"),
            std::string::npos);
  EXPECT_NE(error_of(with_template("prompt_template", "{} {x}")).find("'{}' names no field"), std::string::npos);
  EXPECT_EQ(error_of(with_template("prompt_template", "{{literal}} {Question}\\n")), "");
}

// QLoRA's 4-bit base: BitsAndBytesConfig's names at the top level (TRL's ModelConfig) or in a section.
TEST(TrainConfig, ReadsTheBitsandbytesKeys) {
  const std::string head =
      R"({"model": "m", "data": {"train_files": ["d.jsonl"]}, "output_dir": "out", "finetuning_type": "lora", )";
  EXPECT_EQ(parse_train_config(kMinimal, "/cfg/run.json").quant.weights().format, WeightFormat::dense);
  TrainConfig top = parse_train_config(head + R"("load_in_4bit": true, "use_bnb_nested_quant": true})", "/c.json");
  EXPECT_EQ(top.quant.weights().format, WeightFormat::nf4);  // TRL's default quant type
  EXPECT_TRUE(top.quant.weights().double_quant);
  for (const char* section : {"quantization", "bnb", "quantization_config"}) {
    const TrainConfig c = parse_train_config(
        head + "\"" + section +
            R"(": {"load_in_4bit": true, "bnb_4bit_quant_type": "fp4", "bnb_4bit_use_double_quant": false,
                   "bnb_4bit_compute_dtype": "bfloat16", "quant_method": "bitsandbytes", "load_in_8bit": false,
                   "bnb_4bit_quant_storage": "uint8"}})",
        "/c.json");
    EXPECT_EQ(c.quant.weights().format, WeightFormat::fp4) << section;
    EXPECT_FALSE(c.quant.weights().double_quant);
    EXPECT_EQ(c.quant.compute_dtype, "bfloat16");
  }
  EXPECT_EQ(parse_train_config(head + R"("bnb_4bit_quant_type": "fp4"})", "/c.json").quant.weights().format,
            WeightFormat::dense);  // without load_in_4bit, as transformers ignores it
  auto bad = [&](const std::string& tail, const std::string& want) {
    const std::string msg = error_of(head + tail);
    EXPECT_NE(msg.find(want), std::string::npos) << msg;
  };
  bad(R"("bnb_4bit_quant_type": "int4"})", "key \"bnb_4bit_quant_type\" is \"int4\"; valid values: nf4, fp4");
  bad(R"("bnb_4bit_compute_dtype": "float16"})", "key \"bnb_4bit_compute_dtype\" is float16");
  bad(R"("quantization": {"load_in_8bit": true}})", "key \"quantization.load_in_8bit\" is not supported");
  bad(R"("bnb": {"bnb_4bit_quant_typ": "nf4"}})", "did you mean \"bnb.bnb_4bit_quant_type\"?");
}

TEST(TrainConfig, ResumeMayChangeOnlyLengthCadenceAndDevice) {
  const std::string before = parse_train_config(kMinimal, "/cfg/run.json").resolved_json;
  auto now = [&](std::vector<std::string> set) {
    return parse_train_config(apply_overrides(kMinimal, set, "x"), "/cfg/run.json").resolved_json;
  };
  EXPECT_TRUE(resume_incompatible_keys(before, before).empty());
  EXPECT_TRUE(
      resume_incompatible_keys(before, now({"training.max_steps=100", "save_steps=10", "device=\"cpu\""})).empty());
  EXPECT_EQ(resume_incompatible_keys(before, now({"training.learning_rate=1e-3", "data.max_length=64"})),
            (std::vector<std::string>{"data.max_length", "training.learning_rate"}));
  EXPECT_EQ(resume_incompatible_keys(before, now({"training.seed=7"})), std::vector<std::string>{"training.seed"});
  // GA may change with the world size: the trainer checks GA x world against the checkpoint (multi_rank_test).
  EXPECT_TRUE(resume_incompatible_keys(before, now({"training.gradient_accumulation_steps=4"})).empty());
}

TEST(ConfigOverrides, SetReplacesAddsAndCreatesKeys) {
  const std::string text = apply_overrides(kMinimal,
                                           {"training.learning_rate=1e-4", "model=other", "lora.r=4",
                                            "data.max_length=64", "device=\"cpu\"", "lora.target_modules=[\"q_proj\"]"},
                                           "/cfg/run.json");
  TrainConfig c = parse_train_config(text, "/cfg/run.json");
  EXPECT_EQ(c.training.learning_rate, 1e-4);
  EXPECT_EQ(c.model, "/cfg/other");
  EXPECT_EQ(c.lora.r, 4);
  EXPECT_EQ(c.data.max_length, 64);
  EXPECT_EQ(c.device, "cpu");
  EXPECT_EQ(c.lora.target_names(), std::vector<std::string>{"q_proj"});
  EXPECT_THROW(apply_overrides(kMinimal, {"no_equals_sign"}, "x"), InputError);
  EXPECT_THROW(apply_overrides(kMinimal, {"model.x=1"}, "x"), InputError);  // model is a string, not an object
}

}  // namespace
}  // namespace qsft::test
