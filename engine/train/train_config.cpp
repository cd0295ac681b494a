#include "engine/train/train_config.h"

#include <simdjson.h>

#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "engine/base/error.h"
#include "engine/base/nearest_key.h"
#include "engine/io/json_writer.h"
#include "engine/train/config_overrides.h"
#include "engine/train/lr_schedule.h"

namespace qsft {

namespace fs = std::filesystem;
using simdjson::dom::element;

namespace {

// Upper bounds of the counts: far above any real run, low enough that no product of them overflows.
constexpr int64_t kMaxSteps = int64_t(1) << 40;         // steps, and the cadences counted in steps
constexpr int64_t kMaxBatch = int64_t(1) << 16;         // per_device_train_batch_size
constexpr int64_t kMaxAccumulation = int64_t(1) << 20;  // gradient_accumulation_steps
constexpr int64_t kMaxTokens = int64_t(1) << 30;        // tokens of one micro-batch
constexpr int64_t kMaxRank = int64_t(1) << 16;          // lora.r
constexpr int64_t kMaxEpochs = int64_t(1) << 20;        // num_train_epochs

// One section's keys: each parses its value into the config; an unknown key is an error naming the nearest one.
class Section {
 public:
  Section(std::string where, std::string prefix) : where_(std::move(where)), prefix_(std::move(prefix)) {}
  using Setter = std::function<void(element)>;
  void key(const std::string& name, Setter s) { keys_.emplace(name, std::move(s)); }
  void parse(element obj) const {
    if (!obj.is_object()) throw input_error(where_, (prefix_.empty() ? "the config" : prefix_) + " must be an object");
    for (auto field : obj.get_object()) {
      const std::string k(field.key);
      auto it = keys_.find(k);
      if (it == keys_.end()) {
        std::vector<std::string> valid;
        std::string list;
        for (auto& [name, _] : keys_) {
          valid.push_back(name);
          list += (list.empty() ? "" : ", ") + name;
        }
        const std::string near = nearest_key(k, valid);
        throw input_error(where_,
                          "unknown key " + full(k) +
                              (near.empty() ? " (valid keys: " + list + ")" : " (did you mean " + full(near) + "?)"));
      }
      it->second(field.value);
    }
  }
  std::string full(const std::string& k) const { return prefix_.empty() ? k : prefix_ + "." + k; }
  const std::string& where() const { return where_; }

 private:
  std::string where_, prefix_;
  std::map<std::string, Setter> keys_;
};

// Typed readers: a wrong type names the key and what it must be.
struct Reader {
  const Section& s;
  std::string key;
  [[noreturn]] void bad(const std::string& what) const { throw input_error(s.where(), s.full(key) + " " + what); }
  double number(element e) const {
    double d;
    if (e.is_int64()) return double(int64_t(e));
    if (e.is_uint64()) return double(uint64_t(e));
    if (e.get_double().get(d)) bad("must be a number");
    return d;
  }
  int64_t integer(element e) const {
    int64_t i;
    if (e.get_int64().get(i)) bad("must be an integer");
    return i;
  }
  // A whole number in [lo, hi], checked as 64 bits before the caller narrows it (2^32 must not become 0).
  int64_t count(element e, int64_t lo, int64_t hi) const {
    const int64_t i = integer(e);
    if (i < lo) bad("must be >= " + std::to_string(lo));
    if (i > hi) bad("must be <= " + std::to_string(hi) + ", got " + std::to_string(i));
    return i;
  }
  double non_negative(element e) const {
    const double d = number(e);
    if (!(d >= 0)) bad("must be >= 0");
    return d;
  }
  double in_range(element e, double lo, double hi) const {  // lo <= x <= hi
    const double d = number(e);
    if (!(d >= lo && d <= hi)) bad("must be in [" + Json(lo).dump() + ", " + Json(hi).dump() + "]");
    return d;
  }
  double positive(element e) const {
    double d = number(e);
    if (!(d > 0)) bad("must be > 0");
    return d;
  }
  bool boolean(element e) const {
    bool b;
    if (e.get_bool().get(b)) bad("must be true or false");
    return b;
  }
  std::string string(element e) const {
    std::string_view v;
    if (e.get_string().get(v)) bad("must be a string");
    return std::string(v);
  }
  std::string one_of(element e, const std::vector<std::string>& choices) const {
    std::string v = string(e), list;
    for (const auto& c : choices) {
      if (c == v) return v;
      list += (list.empty() ? "" : ", ") + c;
    }
    bad("is \"" + v + "\"; valid values: " + list);
  }
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw input_error(p.string(), "cannot read the config file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void parse_lora(element e, const std::string& where, LoraConfig& c) {
  Section s(where, "lora");
  auto R = [&](const char* k) { return Reader{s, k}; };
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

void parse_training(element e, const std::string& where, TrainingOptions& t) {
  Section s(where, "training");
  auto R = [&](const char* k) { return Reader{s, k}; };
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
  s.key("neftune_noise_alpha",
        [&](element v) { t.neftune_noise_alpha = v.is_null() ? 0 : R("neftune_noise_alpha").non_negative(v); });
  s.key("gradient_checkpointing",
        [&](element v) { t.gradient_checkpointing = R("gradient_checkpointing").boolean(v); });
  s.key("seed", [&](element v) { t.seed = uint64_t(R("seed").count(v, 0, INT64_MAX)); });
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
  return apply_overrides(json_text, set, where);
}

}  // namespace

TrainConfig parse_train_config(const std::string& json_text, const fs::path& path) {
  const std::string where = path.string();
  const fs::path base = fs::absolute(path).parent_path();
  simdjson::dom::parser parser;
  element root;
  simdjson::padded_string padded(json_text);
  if (auto err = parser.parse(padded).get(root))
    throw input_error(where, std::string("invalid JSON: ") + simdjson::error_message(err));
  TrainConfig c;
  c.config_path = fs::absolute(path);
  Section s(where, "");
  auto R = [&](const char* k) { return Reader{s, k}; };
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
  c.lora.set_targets({"all-linear"}, where);
  s.parse(root);
  if (c.model.empty()) throw input_error(where, "missing key \"model\" (the Hugging Face model directory)");
  if (!has_data) throw input_error(where, "missing key \"data\" (the dataset files and options)");
  if (c.output_dir.empty()) throw input_error(where, "missing key \"output_dir\"");
  if (finetuning_type == "full" && has_lora)
    throw input_error(where, "finetuning_type is \"full\" but there is a \"lora\" section (remove one of them)");
  c.full_finetuning = finetuning_type.empty() ? !has_lora : finetuning_type == "full";
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
  static const std::vector<std::string> may_change = {"training.max_steps",
                                                      "training.num_train_epochs",
                                                      "eval_steps",
                                                      "save_steps",
                                                      "save_total_limit",
                                                      "logging_steps",
                                                      "device",
                                                      "output_dir"};
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

DataConfig run_data_config(const TrainConfig& c) {
  DataConfig d = c.data;
  if (d.cache_dir.empty()) d.cache_dir = (fs::path(c.output_dir) / "cache").string();
  return d;
}

TrainConfig load_train_config(const fs::path& path, const std::vector<std::string>& overrides) {
  return parse_train_config(apply_overrides(read_file(path), overrides, path.string()), path);
}

}  // namespace qsft
