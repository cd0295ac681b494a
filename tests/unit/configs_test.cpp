// The ready-made configs in configs/: every one parses (parsing never opens the model or data folders, so they
// need not exist here), the recipes carry the values their issues ask for, and docs/config.md names every key the
// parser accepts.
#include <algorithm>
#include <sstream>

#include "data/data_config.h"
#include "engine/base/error.h"
#include "engine/train/train_config.h"
#include "test_util.h"

namespace qsft::test {
namespace {

namespace fs = std::filesystem;

const fs::path kConfigs = fs::path(QSFT_SOURCE_DIR) / "configs";

TrainConfig load(const std::string& name) { return load_train_config(kConfigs / name, {}); }

using test::read_file;

std::string file_name(const std::string& path) { return fs::path(path).filename().string(); }

TEST(Configs, EveryConfigParses) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(kConfigs))
    if (e.is_regular_file() && e.path().extension() == ".json") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 4u) << "configs/ should hold demo.json and the recipes";
  for (const fs::path& f : files) {
    SCOPED_TRACE(f.string());
    TrainConfig c;
    // load_train_config (file + overrides) and parse_train_config (text) must agree.
    ASSERT_NO_THROW(c = load_train_config(f, {}));
    TrainConfig t = parse_train_config(read_file(f), f);
    EXPECT_EQ(c.model, t.model);
    EXPECT_EQ(c.output_dir, t.output_dir);
    // Relative paths resolve against configs/, absolute and normalised.
    EXPECT_TRUE(fs::path(c.model).is_absolute()) << c.model;
    EXPECT_TRUE(fs::path(c.output_dir).is_absolute()) << c.output_dir;
    EXPECT_EQ(c.model.find(".."), std::string::npos) << c.model;
    ASSERT_FALSE(c.data.train_files.empty());
    for (const std::string& p : c.data.train_files) EXPECT_TRUE(fs::path(p).is_absolute()) << p;
    EXPECT_GT(c.data.max_length, 1);
    EXPECT_GE(c.training.gradient_accumulation_steps, 1);
    EXPECT_TRUE(c.training.per_device_train_batch_size >= 1 || c.training.micro_batch_tokens > 0);
  }
}

TEST(Configs, ParsingDoesNotOpenTheModelOrDataFolders) {
  // A config naming folders that do not exist parses: only `qwen-sft train` / `data` open them.
  const std::string text = R"({"model": "no/such/model", "data": {"train_files": ["no/such/data.jsonl"]},
                               "output_dir": "no/such/out"})";
  TrainConfig c = parse_train_config(text, "/nonexistent-qsft-dir/cfg.json");
  EXPECT_EQ(c.model, "/nonexistent-qsft-dir/no/such/model");
  EXPECT_EQ(c.data.train_files, std::vector<std::string>{"/nonexistent-qsft-dir/no/such/data.jsonl"});
  EXPECT_FALSE(fs::exists(c.model));
}

TEST(Configs, DemoIsUnchanged) {
  TrainConfig c = load("demo.json");
  EXPECT_EQ(c.model, (kConfigs.parent_path() / "build" / "demo-model").lexically_normal().string());
  EXPECT_EQ(c.output_dir, (kConfigs.parent_path() / "build" / "demo-run").lexically_normal().string());
  EXPECT_EQ(c.data.train_files,
            std::vector<std::string>{(kConfigs / "data" / "demo_chat.jsonl").lexically_normal().string()});
  EXPECT_DOUBLE_EQ(c.data.eval_split, 0.05);
  EXPECT_EQ(c.data.max_length, 256);
  EXPECT_EQ(c.lora.r, 16);
  EXPECT_FLOAT_EQ(c.lora.alpha, 32.0f);
  EXPECT_EQ(c.lora.target_names().size(), 7u);
  EXPECT_EQ(c.training.max_steps, 80);
  EXPECT_EQ(c.training.per_device_train_batch_size, 2);
  EXPECT_DOUBLE_EQ(c.training.learning_rate, 3e-3);
  EXPECT_EQ(c.training.lr_scheduler_type, "cosine");
  EXPECT_EQ(c.logging_steps, 5);
  EXPECT_EQ(c.eval_steps, 20);
  EXPECT_EQ(c.save_steps, 40);
  EXPECT_EQ(c.save_total_limit, 2);
  EXPECT_EQ(c.device, "auto");
}

TEST(Configs, Seed001QwenLora) {
  TrainConfig c = load("seed001_qwen2.5_lora.json");
  EXPECT_EQ(file_name(c.model), "Qwen2.5-0.5B-Instruct");
  // OpenAI messages or ShareGPT, recognised per file; loss on assistant turns only (TRL assistant_only_loss).
  EXPECT_EQ(c.data.format, "auto");
  EXPECT_EQ(c.data.loss_mask, "assistant");
  EXPECT_EQ(c.data.max_length, 4096);
  EXPECT_EQ(c.lora.r, 8);
  EXPECT_FLOAT_EQ(c.lora.alpha, 16.0f);
  EXPECT_FLOAT_EQ(c.lora.dropout, 0.05f);
  EXPECT_FALSE(c.lora.use_rslora);
  EXPECT_EQ(c.lora.target_names(), (std::vector<std::string>{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                             "up_proj", "down_proj"}));  // all-linear
  EXPECT_DOUBLE_EQ(c.training.learning_rate, 2e-5);
  EXPECT_EQ(c.training.lr_scheduler_type, "cosine");
  EXPECT_DOUBLE_EQ(c.training.warmup_ratio, 0.03);
  EXPECT_EQ(c.training.warmup_steps, 0);  // else it would win over warmup_ratio
  EXPECT_EQ(c.training.gradient_accumulation_steps, 8);
  EXPECT_EQ(c.eval_steps, 50);
  EXPECT_EQ(c.save_steps, 50);
  EXPECT_TRUE(c.data.eval_split > 0 || !c.data.eval_files.empty()) << "eval every 50 steps needs eval data";
}

TEST(Configs, Seed004DeepSeekMedical) {
  TrainConfig c = load("seed004_deepseek_medical.json");
  EXPECT_EQ(file_name(c.model), "DeepSeek-R1-Distill-Qwen-1.5B");
  EXPECT_EQ(c.lora.r, 16);
  EXPECT_FLOAT_EQ(c.lora.alpha, 32.0f);
  EXPECT_FLOAT_EQ(c.lora.dropout, 0.05f);
  EXPECT_EQ(c.lora.target_names(), (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_DOUBLE_EQ(c.training.learning_rate, 3e-4);
  EXPECT_DOUBLE_EQ(c.training.num_train_epochs, 3);
  EXPECT_EQ(c.training.max_steps, -1);  // epochs decide
  EXPECT_EQ(c.training.per_device_train_batch_size, 2);
  EXPECT_EQ(c.training.micro_batch_tokens, 0);  // else it would replace the batch size
  EXPECT_EQ(c.training.gradient_accumulation_steps, 4);
  EXPECT_EQ(c.data.max_length, 512);
  // The tutorial's text, "诊断问题：{Question}\n详细分析：{Complex_CoT}\n### 答案：\n{Response}" + EOS, split so that
  // the question is the prompt and the reasoning + answer are trained.
  EXPECT_EQ(c.data.format, "template");
  EXPECT_EQ(c.data.prompt_template, "诊断问题：{Question}\n详细分析：");
  EXPECT_EQ(c.data.completion_template, "{Complex_CoT}\n### 答案：\n{Response}");
  EXPECT_EQ(c.data.loss_mask, "completion");
  EXPECT_TRUE(c.data.append_eos);
  EXPECT_FALSE(c.data.packing);  // one example per row, as the tutorial's padded batches of 2
}

TEST(Configs, Qwen7bLoraForOneH100) {
  TrainConfig c = load("qwen2.5-7b-lora.json");
  EXPECT_EQ(file_name(c.model), "Qwen2.5-7B-Instruct");
  EXPECT_EQ(c.lora.r, 16);
  EXPECT_FLOAT_EQ(c.lora.alpha, 32.0f);
  EXPECT_EQ(c.lora.target_names().size(), 7u);
  EXPECT_EQ(c.device, "cuda");  // the CUDA backend computes in bf16 (TRL's bf16=True)
  EXPECT_GE(c.training.micro_batch_tokens, 8192);
  EXPECT_LE(c.training.micro_batch_tokens, 32768);
  EXPECT_GE(c.training.micro_batch_tokens, c.data.max_length);
  EXPECT_TRUE(c.training.gradient_checkpointing);
  EXPECT_DOUBLE_EQ(c.training.learning_rate, 1e-4);
  EXPECT_EQ(c.training.lr_scheduler_type, "cosine");
  EXPECT_DOUBLE_EQ(c.training.warmup_ratio, 0.03);
}

TEST(Configs, OverridesApplyToTheShippedConfigs) {
  TrainConfig c =
      load_train_config(kConfigs / "seed004_deepseek_medical.json",
                        {"data.loss_mask=all", "training.learning_rate=1e-4", "lora.r=8", "output_dir=../runs/other"});
  EXPECT_EQ(c.data.loss_mask, "all");
  EXPECT_DOUBLE_EQ(c.training.learning_rate, 1e-4);
  EXPECT_EQ(c.lora.r, 8);
  EXPECT_EQ(c.output_dir, (kConfigs.parent_path() / "runs" / "other").lexically_normal().string());
  EXPECT_EQ(c.data.prompt_template, "诊断问题：{Question}\n详细分析：");  // untouched keys survive the rewrite
  try {
    load_train_config(kConfigs / "seed001_qwen2.5_lora.json", {"training.warmup_ration=0.1"});
    ADD_FAILURE() << "an unknown key given with --set must be an error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean \"training.warmup_ratio\"?"), std::string::npos) << e.what();
  }
}

// The keys a section accepts, read from the parser's own "valid keys: ..." message for a key far from all.
std::vector<std::string> valid_keys(const std::string& json) {
  std::string message;
  try {
    parse_train_config(json, "/cfg/run.json");
  } catch (const InputError& e) {
    message = e.what();
  }
  const std::string tag = "valid keys: ";
  const size_t begin = message.find(tag);
  if (begin == std::string::npos) return {};
  const size_t end = message.find(')', begin);
  std::vector<std::string> keys;
  std::stringstream list(message.substr(begin + tag.size(), end - begin - tag.size()));
  for (std::string k; std::getline(list, k, ',');) keys.push_back(k.substr(k.find_first_not_of(' ')));
  return keys;
}

TEST(Configs, DocsNameEveryKey) {
  const fs::path doc = fs::path(QSFT_SOURCE_DIR) / "docs" / "config.md";
  ASSERT_TRUE(fs::exists(doc));
  const std::string text = read_file(doc);
  const std::string far = "zzzzzzzzzzzzzzzzzzzzzzzz";
  const std::string base = R"({"model": "m", "data": {"train_files": ["d"]}, "output_dir": "o", )";
  std::vector<std::string> top = valid_keys(R"({")" + far + R"(": 1})");
  std::vector<std::string> lora = valid_keys(base + R"("lora": {")" + far + R"(": 1}})");
  std::vector<std::string> training = valid_keys(base + R"("training": {")" + far + R"(": 1}})");
  // At least the keys this page was written for (a new key must be added to docs/config.md too).
  EXPECT_GE(top.size(), 10u);
  EXPECT_GE(lora.size(), 5u);
  EXPECT_GE(training.size(), 17u);
  // The data section's message names no list; these are its keys, each checked to be known to the parser.
  std::vector<std::string> data = {
      "train_files", "eval_files", "eval_split", "format",        "chat_format",     "loss_mask",
      "max_length",  "truncation", "packing",    "on_bad_record", "prompt_template", "completion_template",
      "cache_dir",   "append_eos", "eos_token",  "seed",          "num_threads"};
  for (const std::string& k : data) {
    std::string message;
    try {
      parse_data_config(R"({"train_files": ["d"], ")" + k + R"(": {}})", "/cfg/run.json", "/cfg");
    } catch (const InputError& e) {
      message = e.what();
    }
    EXPECT_EQ(message.find("unknown key"), std::string::npos) << k << ": " << message;
  }
  for (const auto* keys : {&top, &lora, &training, &data})
    for (const std::string& k : *keys)
      EXPECT_NE(text.find("`" + k + "`"), std::string::npos) << k << " is not in docs/config.md";
}

}  // namespace
}  // namespace qsft::test
