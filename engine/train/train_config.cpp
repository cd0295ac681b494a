#include "engine/train/train_config.h"

#include <algorithm>
#include <map>

#include "engine/base/error.h"
#include "engine/base/json_reader.h"
#include "engine/base/json_writer.h"
#include "engine/train/config_overrides.h"
#include "engine/train/lr_schedule.h"

namespace qsft {

namespace fs = std::filesystem;
using json::element;
using json::Section;

namespace {

// Upper bounds of the counts: far above any real run, low enough that no product of them overflows.
constexpr int64_t kMaxSteps = int64_t(1) << 40;         // steps, and the cadences counted in steps
constexpr int64_t kMaxBatch = int64_t(1) << 16;         // per_device_train_batch_size
constexpr int64_t kMaxAccumulation = int64_t(1) << 20;  // gradient_accumulation_steps
constexpr int64_t kMaxTokens = int64_t(1) << 30;        // tokens of one micro-batch
constexpr int64_t kMaxRank = int64_t(1) << 16;          // lora.r
constexpr int64_t kMaxEpochs = int64_t(1) << 20;        // num_train_epochs

void parse_lora(element e, const std::string& where, LoraConfig& c) {
  Section s(where, "lora");
  auto R = [&](const char* k) { return s.reader(k); };
  c.set_targets({"all-linear"}, where);
  s.key("r", [&](element v) { c.r = int(R("r").count(v, 1, kMaxRank)); });
  s.key("lora_alpha", [&](element v) { c.alpha = float(R("lora_alpha").positive(v)); });
  s.key("lora_dropout", [&](element v) {
    c.dropout = float(R("lora_dropout").number(v));
    if (c.dropout < 0 || c.dropout >= 1) R("lora_dropout").bad("must be in [0, 1)");
  });
  s.key("use_rslora", [&](element v) { c.use_rslora = R("use_rslora").boolean(v); });
  s.key("target_modules", [&](element v) {
    std::vector<std::string> names;
    if (v.is_string())
      names.push_back(R("target_modules").string(v));
    else if (v.is_array())
      for (element x : v.get_array()) names.push_back(R("target_modules").string(x));
    else
      R("target_modules").bad("must be \"all-linear\" or a list of module names");
    c.set_targets(names, where + ": lora.target_modules");
  });
  s.parse(e);
}

// training.lr_scheduler_kwargs: every schedule's arguments are known here; which ones lr_scheduler_type takes is
// checked once the whole section is read (the keys may come in any order). Returns the names given.
std::vector<std::string> parse_scheduler_kwargs(element e, const std::string& where, LrSchedulerKwargs& k) {
  std::vector<std::string> given;
  if (e.is_null()) return given;  // TrainingArguments' default
  Section s(where, "training.lr_scheduler_kwargs");
  auto R = [&](const char* name) {
    given.push_back(name);
    return s.reader(name);
  };
  s.key("num_cycles", [&](element v) { k.num_cycles = R("num_cycles").positive(v); });
  s.key("min_lr", [&](element v) { k.min_lr = R("min_lr").non_negative(v); });
  s.key("min_lr_rate", [&](element v) { k.min_lr_rate = R("min_lr_rate").in_range(v, 0, 1); });
  s.key("num_stable_steps", [&](element v) { k.num_stable_steps = R("num_stable_steps").count(v, 0, kMaxSteps); });
  s.key("num_decay_steps", [&](element v) { k.num_decay_steps = R("num_decay_steps").count(v, 0, kMaxSteps); });
  s.key("warmup_type", [&](element v) { k.warmup_type = R("warmup_type").one_of(v, LrSchedule::wsd_shapes()); });
  s.key("decay_type", [&](element v) { k.decay_type = R("decay_type").one_of(v, LrSchedule::wsd_shapes()); });
  s.key("min_lr_ratio", [&](element v) { k.min_lr_ratio = R("min_lr_ratio").in_range(v, 0, 1); });
  s.parse(e);
  return given;
}

// The kwargs against the schedule, as transformers' scheduler functions accept and require them.
void check_scheduler_kwargs(const TrainingOptions& t, const std::vector<std::string>& given, const std::string& where) {
  auto key = [](const std::string& k) { return "key \"training.lr_scheduler_kwargs." + k + "\""; };
  const std::vector<std::string> takes = LrSchedule::kwargs_of(t.lr_scheduler_type);
  for (const std::string& g : given)
    if (std::find(takes.begin(), takes.end(), g) == takes.end()) {
      std::string list;
      for (const std::string& n : takes) list += (list.empty() ? "" : ", ") + n;
      throw input_error(where, key(g) + " is not an argument of lr_scheduler_type \"" + t.lr_scheduler_type + "\" (" +
                                   (list.empty() ? "it takes none" : "it takes " + list) + ")");
    }
  const LrSchedulerKwargs& k = t.lr_scheduler_kwargs;
  if (t.lr_scheduler_type == "cosine_with_min_lr") {
    if (k.min_lr && k.min_lr_rate)
      throw input_error(where, key("min_lr") + " and " + key("min_lr_rate") + ": set only one of them");
    if (!k.min_lr && !k.min_lr_rate)
      throw input_error(where, "missing key " + key("min_lr").substr(4) + " or " + key("min_lr_rate").substr(4) +
                                   " (cosine_with_min_lr needs one)");
  }
  if (t.lr_scheduler_type == "warmup_stable_decay" && !k.num_decay_steps)
    throw input_error(where, "missing key " + key("num_decay_steps").substr(4) + " (warmup_stable_decay needs it)");
}

void parse_training(element e, const std::string& where, TrainingOptions& t) {
  Section s(where, "training");
  auto R = [&](const char* k) { return s.reader(k); };
  s.key("num_train_epochs", [&](element v) {  // epochs x steps per epoch must stay a count of steps
    t.num_train_epochs = R("num_train_epochs").positive(v);
    if (t.num_train_epochs > kMaxEpochs) R("num_train_epochs").bad("must be <= " + std::to_string(kMaxEpochs));
  });
  s.key("max_steps", [&](element v) { t.max_steps = R("max_steps").count(v, -1, kMaxSteps); });
  s.key("per_device_train_batch_size", [&](element v) {
    t.per_device_train_batch_size = int(R("per_device_train_batch_size").count(v, 1, kMaxBatch));
  });
  s.key("micro_batch_tokens",
        [&](element v) { t.micro_batch_tokens = R("micro_batch_tokens").count(v, 0, kMaxTokens); });
  s.key("gradient_accumulation_steps", [&](element v) {
    t.gradient_accumulation_steps = int(R("gradient_accumulation_steps").count(v, 1, kMaxAccumulation));
  });
  s.key("learning_rate", [&](element v) { t.learning_rate = R("learning_rate").positive(v); });
  s.key("lr_scheduler_type",
        [&](element v) { t.lr_scheduler_type = R("lr_scheduler_type").one_of(v, LrSchedule::types()); });
  std::vector<std::string> kwargs_given;
  s.key("lr_scheduler_kwargs",
        [&](element v) { kwargs_given = parse_scheduler_kwargs(v, where, t.lr_scheduler_kwargs); });
  s.key("optim", [&](element v) {  // transformers' names; adamw_torch_fused and adamw_bnb_8bit are the same optimizers
    const std::string o = R("optim").one_of(v, {"adamw_torch", "adamw_torch_fused", "adamw_8bit", "adamw_bnb_8bit"});
    t.optim = o == "adamw_torch_fused" ? "adamw_torch" : o == "adamw_bnb_8bit" ? "adamw_8bit" : o;
  });
  s.key("warmup_ratio", [&](element v) {
    t.warmup_ratio = R("warmup_ratio").number(v);
    if (t.warmup_ratio < 0 || t.warmup_ratio > 1) R("warmup_ratio").bad("must be in [0, 1]");
  });
  s.key("warmup_steps", [&](element v) {
    t.warmup_steps = R("warmup_steps").non_negative(v);
    if (t.warmup_steps > double(kMaxSteps)) R("warmup_steps").bad("must be <= " + std::to_string(kMaxSteps));
  });
  s.key("weight_decay", [&](element v) { t.adamw.weight_decay = R("weight_decay").non_negative(v); });
  s.key("adam_beta1", [&](element v) { t.adamw.beta1 = R("adam_beta1").in_range(v, 0, 0.999999); });
  s.key("adam_beta2", [&](element v) { t.adamw.beta2 = R("adam_beta2").in_range(v, 0, 0.999999); });
  s.key("adam_epsilon", [&](element v) { t.adamw.eps = R("adam_epsilon").positive(v); });
  s.key("max_grad_norm", [&](element v) { t.max_grad_norm = R("max_grad_norm").non_negative(v); });
  s.key("ddp_bucket_cap_mb", [&](element v) {  // null: DDP's default, as transformers passes None
    if (!v.is_null()) t.ddp_bucket_cap_mb = R("ddp_bucket_cap_mb").positive(v);
  });
  s.key("neftune_noise_alpha",
        [&](element v) { t.neftune_noise_alpha = v.is_null() ? 0 : R("neftune_noise_alpha").non_negative(v); });
  s.key("gradient_checkpointing", [&](element v) {  // true, false or "auto"
    t.gradient_checkpointing_auto = v.is_string();
    if (t.gradient_checkpointing_auto)
      R("gradient_checkpointing").one_of(v, {"auto"});
    else if (!v.is_bool())
      R("gradient_checkpointing").bad("must be true, false or \"auto\"");
    else
      t.gradient_checkpointing = R("gradient_checkpointing").boolean(v);
  });
  s.key("embedding_on_host", [&](element v) { t.embedding_on_host = R("embedding_on_host").boolean(v); });
  s.key("seed", [&](element v) { t.seed = uint64_t(R("seed").count(v, 0, INT64_MAX)); });
  s.parse(e);
  check_scheduler_kwargs(t, kwargs_given, where);
}

// The BitsAndBytesConfig keys of QLoRA's 4-bit base into `s` (the top level, or a quantization section).
void quant_keys(Section& s, QuantOptions& q) {
  auto R = [&s](const char* k) { return s.reader(k); };
  s.key("load_in_4bit", [&, R](element v) { q.load_in_4bit = R("load_in_4bit").boolean(v); });
  s.key("bnb_4bit_quant_type", [&, R](element v) {
    q.quant_type = R("bnb_4bit_quant_type").one_of(v, {"nf4", "fp4"});
  });
  s.key("bnb_4bit_use_double_quant", [&, R](element v) { q.double_quant = R("bnb_4bit_use_double_quant").boolean(v); });
  s.key("bnb_4bit_compute_dtype", [&, R](element v) {
    q.compute_dtype = R("bnb_4bit_compute_dtype").string(v);
    if (q.compute_dtype == "float16")
      R("bnb_4bit_compute_dtype").bad("is float16: the engine computes in bfloat16 on cuda, float32 on cpu");
    q.compute_dtype = R("bnb_4bit_compute_dtype").one_of(v, {"bfloat16", "float32"});
  });
}

// A "quantization" / "bnb" / "quantization_config" section: the keys above plus those a saved BitsAndBytesConfig
// carries, accepted when they say what we do.
void parse_quant_section(element e, const std::string& where, const std::string& name, QuantOptions& q) {
  Section s(where, name);
  auto R = [&](const char* k) { return s.reader(k); };
  quant_keys(s, q);
  s.key("quant_method", [&](element v) { R("quant_method").one_of(v, {"bitsandbytes"}); });
  s.key("load_in_8bit", [&](element v) {
    if (R("load_in_8bit").boolean(v)) R("load_in_8bit").bad("is not supported (use load_in_4bit)");
  });
  s.key("bnb_4bit_quant_storage", [&](element v) { R("bnb_4bit_quant_storage").one_of(v, {"uint8"}); });
  s.parse(e);
}

}  // namespace

namespace {

// The config as run, with every path made absolute, so that output_dir/config.json means the same from anywhere.
std::string with_absolute_paths(const TrainConfig& c, const std::string& json_text, const std::string& where) {
  auto list = [](const std::vector<std::string>& paths) {
    Json a = Json::array();
    for (const std::string& p : paths) a.push(p);
    return a.dump();
  };
  std::vector<std::string> set = {"model=" + Json(c.model).dump(), "output_dir=" + Json(c.output_dir).dump(),
                                  "data.train_files=" + list(c.data.train_files)};
  if (!c.data.eval_files.empty()) set.push_back("data.eval_files=" + list(c.data.eval_files));
  if (!c.data.cache_dir.empty()) set.push_back("data.cache_dir=" + Json(c.data.cache_dir).dump());
  if (!c.generation_prompts.empty()) set.push_back("generation_prompts=" + Json(c.generation_prompts).dump());
  return apply_overrides(json_text, set, where);
}

}  // namespace

TrainConfig parse_train_config(const std::string& json_text, const fs::path& path) {
  const std::string where = path.string();
  const fs::path base = fs::absolute(path).parent_path();
  const json::Document doc(where, json_text);
  TrainConfig c;
  c.config_path = fs::absolute(path);
  Section s(where, "");
  auto R = [&](const char* k) { return s.reader(k); };
  bool has_data = false, has_lora = false;
  std::string finetuning_type;
  s.key("model", [&](element v) {
    const std::string m = R("model").string(v);
    if (m.empty()) R("model").bad("is empty (give the Hugging Face model directory)");
    c.model = (base / m).lexically_normal().string();
  });
  s.key("data", [&](element v) {
    if (!v.is_object()) R("data").bad("must be an object");
    c.data = parse_data_config(simdjson::minify(v), where, base);
    has_data = true;
  });
  s.key("lora", [&](element v) {
    parse_lora(v, where, c.lora);
    has_lora = true;
  });
  s.key("finetuning_type", [&](element v) { finetuning_type = R("finetuning_type").one_of(v, {"lora", "full"}); });
  s.key("training", [&](element v) { parse_training(v, where, c.training); });
  s.key("eval_steps", [&](element v) { c.eval_steps = R("eval_steps").count(v, 0, kMaxSteps); });
  s.key("save_steps", [&](element v) { c.save_steps = R("save_steps").count(v, 0, kMaxSteps); });
  s.key("save_total_limit",
        [&](element v) { c.save_total_limit = v.is_null() ? 0 : R("save_total_limit").count(v, 0, kMaxSteps); });
  s.key("logging_steps", [&](element v) { c.logging_steps = R("logging_steps").count(v, 1, kMaxSteps); });
  s.key("output_dir",
        [&](element v) { c.output_dir = (base / R("output_dir").string(v)).lexically_normal().string(); });
  s.key("device", [&](element v) { c.device = R("device").one_of(v, {"auto", "cpu", "cuda"}); });
  s.key("generation_prompts", [&](element v) {
    c.generation_prompts = (base / R("generation_prompts").string(v)).lexically_normal().string();
  });
  quant_keys(s, c.quant);
  s.key("use_bnb_nested_quant", [&](element v) { c.quant.double_quant = R("use_bnb_nested_quant").boolean(v); });
  for (const char* section : {"quantization", "bnb", "quantization_config"})
    s.key(section, [&, section](element v) { parse_quant_section(v, where, section, c.quant); });
  c.lora.set_targets({"all-linear"}, where);
  s.parse(doc.root());
  if (c.model.empty()) throw input_error(where, "missing key \"model\" (the Hugging Face model directory)");
  if (!has_data) throw input_error(where, "missing key \"data\" (the dataset files and options)");
  if (c.output_dir.empty()) throw input_error(where, "missing key \"output_dir\"");
  if (finetuning_type == "full" && has_lora)
    throw input_error(where,
                      "key \"finetuning_type\" is \"full\" but there is a \"lora\" section (remove one of them)");
  c.full_finetuning = finetuning_type.empty() ? !has_lora : finetuning_type == "full";
  if (c.full_finetuning && c.quant.load_in_4bit)
    throw input_error(where,
                      "key \"load_in_4bit\" must be false with full fine-tuning (QLoRA trains LoRA adapters "
                      "over the frozen 4-bit base: add a \"lora\" section)");
  const int64_t bins = c.training.micro_batch_tokens > 0 ? 1 : c.training.per_device_train_batch_size;
  if (c.data.max_length > kMaxTokens / bins)  // the micro-batch the activations are sized for (plan.h)
    throw input_error(where, std::string("data.max_length") +
                                 (bins > 1 ? " x training.per_device_train_batch_size" : "") +
                                 " must be <= " + std::to_string(kMaxTokens) + " tokens");
  if (c.eval_steps > 0 && c.data.eval_files.empty() && c.data.eval_split <= 0)
    throw input_error(where, "eval_steps is set but there is no eval data (set data.eval_files or data.eval_split)");
  c.resolved_json = with_absolute_paths(c, json_text, where);
  return c;
}

namespace {

// Every leaf of a JSON document as dotted path -> its minified value (arrays are leaves).
void flatten(element e, const std::string& path, std::map<std::string, std::string>& out) {
  if (!e.is_object()) {
    out[path] = simdjson::minify(e);
    return;
  }
  for (auto field : e.get_object())
    flatten(field.value, path.empty() ? std::string(field.key) : path + "." + std::string(field.key), out);
}

std::map<std::string, std::string> flattened(const std::string& json) {
  simdjson::dom::parser parser;
  element root;
  simdjson::padded_string padded(json);
  std::map<std::string, std::string> out;
  if (!parser.parse(padded).get(root)) flatten(root, "", out);
  return out;
}

}  // namespace

std::vector<std::string> resume_incompatible_keys(const std::string& before_json, const std::string& now_json) {
  // gradient_accumulation_steps may change with the world size: the trainer checks that GA x world, the
  // micro-batches per step, stays that of the checkpoint.
  static const std::vector<std::string> may_change = {"training.max_steps",
                                                      "training.gradient_accumulation_steps",
                                                      "training.num_train_epochs",
                                                      "training.ddp_bucket_cap_mb",
                                                      "training.embedding_on_host",
                                                      "eval_steps",
                                                      "save_steps",
                                                      "save_total_limit",
                                                      "logging_steps",
                                                      "device",
                                                      "output_dir",
                                                      "generation_prompts"};
  const auto a = flattened(before_json), b = flattened(now_json);
  std::vector<std::string> keys;
  auto differs = [&](const std::string& k) {
    if (std::find(may_change.begin(), may_change.end(), k) != may_change.end()) return;
    auto x = a.find(k), y = b.find(k);
    if ((x == a.end()) != (y == b.end()) || (x != a.end() && x->second != y->second)) keys.push_back(k);
  };
  for (const auto& [k, _] : a) differs(k);
  for (const auto& [k, _] : b)
    if (!a.count(k)) differs(k);
  return keys;
}

LrSchedule lr_schedule_for(const TrainingOptions& t, int64_t total_steps) {
  return {t.lr_scheduler_type, t.learning_rate, warmup_steps_for(t.warmup_steps, t.warmup_ratio, total_steps),
          total_steps, t.lr_scheduler_kwargs};
}

DataConfig run_data_config(const TrainConfig& c) {
  DataConfig d = c.data;
  if (d.cache_dir.empty()) d.cache_dir = (fs::path(c.output_dir) / "cache").string();
  return d;
}

TrainConfig load_train_config(const fs::path& path, const std::vector<std::string>& overrides) {
  return parse_train_config(apply_overrides(json::read_text_file(path.string()), overrides, path.string()), path);
}

}  // namespace qsft
