// The record formats of SFT datasets, recognised from a record's keys or named in the config, and the
// conversion of a parsed record (simdjson) to an Example. Internal to data/ (.cpp files only: simdjson).
#pragma once
#include <simdjson.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/example.h"

namespace qsft {

enum class RecordFormat {
  messages,           // OpenAI: {"messages": [{role, content, tool_calls, name}], "tools": [...]}
  sharegpt,           // {"conversations": [{from, value}], "tools": "<JSON text>", "system": ...}
  alpaca,             // {"instruction", "input", "output", "system", "history"}
  prompt_completion,  // {"prompt", "completion"}: both strings, or both message lists
  text,               // {"text"}
  templated,          // any fields, formatted by the config's prompt/completion templates
  tokens,             // {"input_ids", "labels" | "mask" | "assistant_masks" | "completion_mask"}
};

std::string format_name(RecordFormat f);
// The config name ("messages", "sharegpt", ..., "template", "tokens"); nullopt for "auto".
std::optional<RecordFormat> format_from_name(std::string_view name);

// The format whose keys the record has; InputError listing the keys when none fits.
RecordFormat detect_format(simdjson::dom::element record);

struct Templates {
  std::string prompt, completion;
};

// The example a record of format f describes. Bad records: InputError "field: reason" (the caller adds where).
Example to_example(RecordFormat f, simdjson::dom::element record, const Templates& templates);

// Format conversions (format_messages.cpp, format_text.cpp).
Example messages_example(simdjson::dom::element record);
Example sharegpt_example(simdjson::dom::element record);
Example alpaca_example(simdjson::dom::element record);
Example prompt_completion_example(simdjson::dom::element record);
Example text_example(simdjson::dom::element record);
Example templated_example(simdjson::dom::element record, const Templates& templates);
Example tokens_example(simdjson::dom::element record);

}  // namespace qsft
