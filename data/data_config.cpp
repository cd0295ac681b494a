#include "data/data_config.h"

#include <simdjson.h>

#include <algorithm>
#include <functional>

#include "engine/base/error.h"
#include "engine/base/nearest_key.h"

namespace qsft {

namespace dom = simdjson::dom;
namespace fs = std::filesystem;

namespace {

struct KeyReader {
  const std::string& where;
  const fs::path& base_dir;
  std::string key;  // "data.<name>"
  dom::element value;

  [[noreturn]] void fail(const std::string& what) const { throw input_error(where, key + ": " + what); }

  std::string text() const {
    std::string_view s;
    if (value.get_string().get(s)) fail("expected a string");
    return std::string(s);
  }
  std::string choice(const std::vector<std::string>& allowed) const {
    std::string s = text();
    if (std::find(allowed.begin(), allowed.end(), s) != allowed.end()) return s;
    std::string list;
    for (auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    fail("'" + s + "' is not one of " + list);
  }
  int64_t integer(int64_t min) const {
    int64_t i;
    if (value.get_int64().get(i)) fail("expected an integer");
    if (i < min) fail("must be at least " + std::to_string(min));
    return i;
  }
  double number() const {
    double d;
    if (value.get_double().get(d)) fail("expected a number");
    return d;
  }
  bool boolean() const {
    bool b;
    if (value.get_bool().get(b)) fail("expected true or false");
    return b;
  }
  std::string path() const {
    fs::path p(text());
    return (p.is_absolute() ? p : base_dir / p).lexically_normal().string();
  }
  // A path or a list of paths.
  std::vector<std::string> paths() const {
    if (value.is_string()) return {path()};
    dom::array list;
    if (value.get_array().get(list)) fail("expected a path or a list of paths");
    std::vector<std::string> out;
    for (dom::element item : list) {
      KeyReader r = *this;
      r.value = item;
      out.push_back(r.path());
    }
    return out;
  }
};

using Setter = std::function<void(DataConfig&, const KeyReader&)>;

const std::vector<std::pair<std::string, Setter>>& setters() {
  static const std::vector<std::pair<std::string, Setter>> s = {
      {"train_files", [](DataConfig& c, const KeyReader& r) { c.train_files = r.paths(); }},
      {"eval_files", [](DataConfig& c, const KeyReader& r) { c.eval_files = r.paths(); }},
      {"eval_split",
       [](DataConfig& c, const KeyReader& r) {
         c.eval_split = r.number();
         if (c.eval_split < 0 || c.eval_split >= 1) r.fail("must be in [0, 1)");
       }},
      {"format",
       [](DataConfig& c, const KeyReader& r) {
         c.format =
             r.choice({"auto", "messages", "sharegpt", "alpaca", "prompt_completion", "text", "template", "tokens"});
       }},
      {"chat_format", [](DataConfig& c, const KeyReader& r) { c.chat_format = r.text(); }},
      {"loss_mask",
       [](DataConfig& c, const KeyReader& r) {
         c.loss_mask = r.choice({"auto", "assistant", "completion", "all"});
       }},
      {"max_length", [](DataConfig& c, const KeyReader& r) { c.max_length = r.integer(2); }},
      {"truncation",
       [](DataConfig& c, const KeyReader& r) {
         c.truncation = r.choice({"keep_start", "drop", "split"});
       }},
      {"packing", [](DataConfig& c, const KeyReader& r) { c.packing = r.boolean(); }},
      {"on_bad_record",
       [](DataConfig& c, const KeyReader& r) {
         c.on_bad_record = r.choice({"error", "skip"});
       }},
      {"prompt_template", [](DataConfig& c, const KeyReader& r) { c.prompt_template = r.text(); }},
      {"completion_template", [](DataConfig& c, const KeyReader& r) { c.completion_template = r.text(); }},
      {"cache_dir", [](DataConfig& c, const KeyReader& r) { c.cache_dir = r.path(); }},
      {"append_eos", [](DataConfig& c, const KeyReader& r) { c.append_eos = r.boolean(); }},
      {"eos_token", [](DataConfig& c, const KeyReader& r) { c.eos_token = r.text(); }},
      {"seed", [](DataConfig& c, const KeyReader& r) { c.seed = uint64_t(r.integer(0)); }},
      {"num_threads", [](DataConfig& c, const KeyReader& r) { c.num_threads = int(r.integer(0)); }},
  };
  return s;
}

}  // namespace

DataConfig parse_data_config(std::string_view json_object_text, const std::string& where, const fs::path& base_dir) {
  dom::parser parser;
  simdjson::padded_string padded(json_object_text);
  dom::element root;
  if (auto err = parser.parse(padded).get(root))
    throw input_error(where, std::string("data: not valid JSON: ") + simdjson::error_message(err));
  dom::object obj;
  if (root.get_object().get(obj)) throw input_error(where, "data: expected an object");
  std::vector<std::string> valid;
  for (auto& [name, set] : setters()) valid.push_back(name);
  DataConfig c;
  for (dom::key_value_pair kv : obj) {
    std::string name(kv.key);
    auto it = std::find_if(setters().begin(), setters().end(), [&](auto& s) { return s.first == name; });
    if (it == setters().end()) {
      std::string hint = nearest_key(name, valid), list;
      for (const std::string& v : valid) list += (list.empty() ? "" : ", ") + v;
      throw input_error(where,
                        "unknown key data." + name +
                            (hint.empty() ? " (valid keys: " + list + ")" : " (did you mean data." + hint + "?)"));
    }
    it->second(c, KeyReader{where, base_dir, "data." + name, kv.value});
  }
  if (c.train_files.empty()) throw input_error(where, "data.train_files: missing (a file, a folder or a list)");
  if (c.format == "template" && c.prompt_template.empty() && c.completion_template.empty())
    throw input_error(where, "data.format: 'template' needs data.prompt_template and/or data.completion_template");
  // A template's completion is what is trained: without one only the EOS would be.
  if (!c.prompt_template.empty() && c.completion_template.empty() && c.loss_mask != "all")
    throw input_error(where,
                      "data.completion_template: missing; with a prompt_template only the completion is "
                      "trained (give completion_template, or set data.loss_mask to \"all\")");
  if (!c.eval_files.empty() && c.eval_split > 0)
    throw input_error(where, "data.eval_split: give eval_files or eval_split, not both");
  return c;
}

std::vector<std::string> expand_data_files(const std::vector<std::string>& paths, const std::string& key) {
  std::vector<std::string> files;
  for (const std::string& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::directory_iterator(p)) {
        const std::string name = entry.path().filename().string();
        auto ends = [&](std::string_view s) { return name.size() >= s.size() && name.ends_with(s); };
        if (entry.is_regular_file() && (ends(".json") || ends(".jsonl") || ends(".json.gz") || ends(".jsonl.gz")))
          found.push_back(entry.path().string());
      }
      if (found.empty()) throw InputError(key + ": folder " + p + " has no .json or .jsonl files");
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(p, ec)) {
      files.push_back(p);
    } else {
      throw InputError(key + ": " + p + ": no such file or folder");
    }
  }
  return files;
}

}  // namespace qsft
