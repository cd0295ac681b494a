#include "data/data_config.h"

#include <algorithm>

#include "engine/base/brace_fields.h"
#include "engine/base/error.h"
#include "engine/base/json_reader.h"

namespace qsft {

namespace fs = std::filesystem;
using json::element;

namespace {

// A path of the config, relative to the config file's folder: made absolute.
std::string path_in(const fs::path& base_dir, const std::string& p) {
  const fs::path path(p);
  return (path.is_absolute() ? path : base_dir / path).lexically_normal().string();
}

// A path or a list of paths.
std::vector<std::string> paths_in(const fs::path& base_dir, const json::Reader& r, element v) {
  if (v.is_string()) return {path_in(base_dir, r.string(v))};
  std::vector<std::string> out;
  for (element item : r.list(v)) out.push_back(path_in(base_dir, r.string(item)));
  return out;
}

// A field template must scan as Python's str.format would and name a field in every "{...}".
void check_template(const std::string& tmpl, const char* key, const std::string& where) {
  auto bad = [&](const std::string& why) {
    throw input_error(where, std::string("key \"data.") + key + "\": " + why + " in \"" + tmpl + "\"");
  };
  scan_brace_fields(
      tmpl, [](char) {},
      [&](std::string_view field) {
        if (field.empty()) bad("'{}' names no field (write '{{}}' for literal braces)");
      },
      [&](BraceError e) {
        bad(e == BraceError::lone_close ? "a lone '}' (write '}}' for a brace)" : "a '{' without a closing '}'");
      });
}

void check_data_config(const DataConfig& c, const std::string& where) {
  check_template(c.prompt_template, "prompt_template", where);
  check_template(c.completion_template, "completion_template", where);
  if (c.train_files.empty()) throw input_error(where, "missing key \"data.train_files\" (a file, a folder or a list)");
  if (c.format == "template" && c.prompt_template.empty() && c.completion_template.empty())
    throw input_error(where,
                      "key \"data.format\": 'template' needs data.prompt_template and/or "
                      "data.completion_template");
  // A template's completion is what is trained: without one only the EOS would be.
  if (!c.prompt_template.empty() && c.completion_template.empty() && c.loss_mask != "all")
    throw input_error(where,
                      "missing key \"data.completion_template\": with a prompt_template only the completion is "
                      "trained (give completion_template, or set data.loss_mask to \"all\")");
  if (!c.eval_files.empty() && c.eval_split > 0)
    throw input_error(where, "key \"data.eval_split\": give eval_files or eval_split, not both");
}

}  // namespace

DataConfig parse_data_config(std::string_view json_object_text, const std::string& where, const fs::path& base_dir) {
  const json::Document doc(where, json_object_text);
  DataConfig c;
  json::Section s(where, "data");
  auto R = [&](const char* k) { return s.reader(k); };
  s.key("train_files", [&](element v) { c.train_files = paths_in(base_dir, R("train_files"), v); });
  s.key("eval_files", [&](element v) { c.eval_files = paths_in(base_dir, R("eval_files"), v); });
  s.key("eval_split", [&](element v) {
    c.eval_split = R("eval_split").number(v);
    if (c.eval_split < 0 || c.eval_split >= 1) R("eval_split").bad("must be in [0, 1)");
  });
  s.key("format", [&](element v) {
    c.format = R("format").one_of(
        v, {"auto", "messages", "sharegpt", "alpaca", "prompt_completion", "text", "template", "tokens"});
  });
  s.key("chat_format", [&](element v) { c.chat_format = R("chat_format").string(v); });
  s.key("loss_mask", [&](element v) {
    c.loss_mask = R("loss_mask").one_of(v, {"auto", "assistant", "completion", "all"});
  });
  s.key("max_length", [&](element v) { c.max_length = R("max_length").count(v, 2, INT64_MAX); });
  s.key("truncation", [&](element v) { c.truncation = R("truncation").one_of(v, {"keep_start", "drop", "split"}); });
  s.key("packing", [&](element v) { c.packing = R("packing").boolean(v); });
  s.key("on_bad_record", [&](element v) { c.on_bad_record = R("on_bad_record").one_of(v, {"error", "skip"}); });
  s.key("prompt_template", [&](element v) { c.prompt_template = R("prompt_template").string(v); });
  s.key("completion_template", [&](element v) { c.completion_template = R("completion_template").string(v); });
  s.key("cache_dir", [&](element v) { c.cache_dir = path_in(base_dir, R("cache_dir").string(v)); });
  s.key("append_eos", [&](element v) { c.append_eos = R("append_eos").boolean(v); });
  s.key("eos_token", [&](element v) { c.eos_token = R("eos_token").string(v); });
  s.key("seed", [&](element v) { c.seed = uint64_t(R("seed").count(v, 0, INT64_MAX)); });
  s.key("num_threads", [&](element v) { c.num_threads = int(R("num_threads").count(v, 0, INT32_MAX)); });
  s.parse(doc.root());
  check_data_config(c, where);
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
