// What turns a config's records into token ids and trained masks for a model: its tokenizer and chat format with
// the config's loss mask and EOS (ModelEncoder, which the data pipeline uses), and one record at a time as the
// pipeline encodes it (RecordEncoder: qwen-sft tokenize --chat).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "data/data_config.h"
#include "data/example_encoder.h"
#include "data/record_format.h"

namespace qsft {

class ModelEncoder {
 public:
  // model_dir's tokenizer and chat format (cfg.chat_format or recognised; none: conversations throw NoChatFormat).
  ModelEncoder(const DataConfig& cfg, const std::string& model_dir);
  ModelEncoder(const ModelEncoder&) = delete;
  ModelEncoder& operator=(const ModelEncoder&) = delete;
  const ExampleEncoder& examples() const { return *encoder_; }

 private:
  Tokenizer tok_;
  std::unique_ptr<ChatFormat> chat_;
  std::unique_ptr<ExampleEncoder> encoder_;  // refers to tok_ and chat_
};

// The record format the config sets for every file (a named format, or templates); nullopt: detect per file.
std::optional<RecordFormat> configured_format(const DataConfig& cfg);

class RecordEncoder {
 public:
  RecordEncoder(const DataConfig& cfg, const std::string& model_dir);
  // The ids and mask of one record's JSON text, as the pipeline makes them: cut to max_length when truncation is
  // keep_start (drop, split: the whole record, which training drops or cuts into max_length pieces). The record
  // format is the configured one or the first record's (the records are one file). InputError "field: reason".
  Encoded encode(std::string_view json);

 private:
  DataConfig cfg_;
  ModelEncoder model_;
  std::optional<RecordFormat> format_;
};

}  // namespace qsft
