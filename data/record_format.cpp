#include "data/record_format_internal.h"

#include "tokenizer/conversation_json_internal.h"

namespace qsft {

using namespace json_fields;

namespace {

constexpr std::pair<RecordFormat, const char*> kNames[] = {
    {RecordFormat::messages, "messages"}, {RecordFormat::sharegpt, "sharegpt"},
    {RecordFormat::alpaca, "alpaca"},     {RecordFormat::prompt_completion, "prompt_completion"},
    {RecordFormat::text, "text"},         {RecordFormat::templated, "template"},
    {RecordFormat::tokens, "tokens"},
};

}  // namespace

std::string format_name(RecordFormat f) {
  for (auto& [format, name] : kNames)
    if (format == f) return name;
  return "?";
}

std::optional<RecordFormat> format_from_name(std::string_view name) {
  for (auto& [format, n] : kNames)
    if (n == name) return format;
  return std::nullopt;
}

RecordFormat detect_format(dom::element record) {
  dom::object obj = as_object(record, "(record)");
  auto has = [&](std::string_view key) { return !obj.at_key(key).error(); };
  if (has("messages")) return RecordFormat::messages;
  if (has("conversations")) return RecordFormat::sharegpt;
  if (has("instruction") && has("output")) return RecordFormat::alpaca;
  if (has("prompt") && has("completion")) return RecordFormat::prompt_completion;
  if (has("input_ids")) return RecordFormat::tokens;
  if (has("text")) return RecordFormat::text;
  std::string keys;
  for (auto kv : obj) keys += (keys.empty() ? "" : ", ") + std::string(kv.key);
  throw InputError("cannot recognise the record format from its keys (" + keys +
                   "); expected messages, conversations, instruction+output, prompt+completion, text or "
                   "input_ids, or set data.format (with data.prompt_template for other fields)");
}

Example to_example(RecordFormat f, dom::element record, const Templates& templates) {
  as_object(record, "(record)");
  switch (f) {
    case RecordFormat::messages: return messages_example(record);
    case RecordFormat::sharegpt: return sharegpt_example(record);
    case RecordFormat::alpaca: return alpaca_example(record);
    case RecordFormat::prompt_completion: return prompt_completion_example(record);
    case RecordFormat::text: return text_example(record);
    case RecordFormat::templated: return templated_example(record, templates);
    case RecordFormat::tokens: return tokens_example(record);
  }
  throw std::logic_error("to_example: unknown format");
}

}  // namespace qsft
