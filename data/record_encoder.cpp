#include "data/record_encoder.h"

#include <simdjson.h>

#include "data/record_format_internal.h"
#include "engine/base/error.h"

namespace qsft {

namespace {

int32_t eos_id(const DataConfig& cfg, const Tokenizer& tok) {
  if (cfg.eos_token.empty()) return tok.eos_id();
  int32_t id = tok.token_id(cfg.eos_token);
  if (id < 0) throw InputError("data.eos_token: '" + cfg.eos_token + "' is not a token of the tokenizer");
  return id;
}

}  // namespace

ModelEncoder::ModelEncoder(const DataConfig& cfg, const std::string& model_dir) : tok_(Tokenizer::load(model_dir)) {
  std::string chat_error;
  try {
    chat_ = ChatFormat::for_model(model_dir, cfg.chat_format);
  } catch (const InputError& e) {
    if (!cfg.chat_format.empty()) throw;
    chat_error = std::string("a conversation needs a chat format: ") + e.what();
  }
  encoder_ = std::make_unique<ExampleEncoder>(
      tok_, chat_.get(), chat_error,
      EncoderOptions{loss_mask_from_name(cfg.loss_mask), cfg.append_eos, cfg.append_eos ? eos_id(cfg, tok_) : -1});
}

std::optional<RecordFormat> configured_format(const DataConfig& cfg) {
  if (cfg.format != "auto") return format_from_name(cfg.format);
  if (!cfg.prompt_template.empty() || !cfg.completion_template.empty()) return RecordFormat::templated;
  return std::nullopt;
}

RecordEncoder::RecordEncoder(const DataConfig& cfg, const std::string& model_dir)
    : cfg_(cfg), model_(cfg, model_dir), format_(configured_format(cfg)) {}

Encoded RecordEncoder::encode(std::string_view json) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto err = parser.parse(simdjson::padded_string(json)).get(root))
    throw InputError(std::string("not valid JSON: ") + simdjson::error_message(err));
  if (!format_) format_ = detect_format(root);
  Encoded e = model_.examples().encode(to_example(*format_, root, {cfg_.prompt_template, cfg_.completion_template}));
  if (cfg_.truncation == "keep_start" && int64_t(e.ids.size()) > cfg_.max_length) {
    e.ids.resize(size_t(cfg_.max_length));
    e.mask.resize(size_t(cfg_.max_length));
  }
  return e;
}

}  // namespace qsft
