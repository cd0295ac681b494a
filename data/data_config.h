// The "data" section of a training config: which files, how records become token sequences, and how sequences are
// truncated and packed. parse_data_config reads it from JSON and checks every key and value.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace qsft {

struct DataConfig {
  // JSON array / JSONL / single-object files, gzip-compressed or not (*.json.gz, *.jsonl.gz), or folders of them
  // (their *.json, *.jsonl, *.json.gz and *.jsonl.gz files, sorted).
  std::vector<std::string> train_files;
  std::vector<std::string> eval_files;
  double eval_split = 0;                  // fraction of the train records held out for eval when eval_files is empty
  std::string format = "auto";            // auto|messages|sharegpt|alpaca|prompt_completion|text|template|tokens
  std::string chat_format;                // "" = recognise from the model's chat template
  std::string loss_mask = "auto";         // auto|assistant|completion|all
  int64_t max_length = 1024;              // tokens per sequence (and per packed bin)
  std::string truncation = "keep_start";  // keep_start|drop|split
  bool packing = true;
  std::string on_bad_record = "error";               // error|skip
  std::string prompt_template, completion_template;  // format "template": "{Field}" placeholders, "{{" = "{"
  std::string cache_dir;   // "" = no explicit cache folder (the caller chooses, e.g. <output_dir>/cache)
  bool append_eos = true;  // EOS after text and completions (not after chat-formatted conversations)
  std::string eos_token;   // "" = the tokenizer's eos
  uint64_t seed = 42;      // the eval_split draw
  int num_threads = 0;     // 0 = all cores
};

// The config's "data" object (its JSON text). Unknown keys and bad values: InputError naming the key and `where`
// (the config file), with the nearest valid key for a misspelt one. Relative paths resolve against base_dir.
DataConfig parse_data_config(std::string_view json_object_text, const std::string& where,
                             const std::filesystem::path& base_dir);

// The data files a list of paths names: files as given, folders expanded to their *.json / *.jsonl / *.json.gz /
// *.jsonl.gz files in name order. A path that does not exist: InputError naming `key`.
std::vector<std::string> expand_data_files(const std::vector<std::string>& paths, const std::string& key);

}  // namespace qsft
