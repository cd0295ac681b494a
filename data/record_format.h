// The record formats of SFT datasets, recognised from a record's keys or named in the config. Reading a parsed
// record as an Example is data/record_format_internal.h (simdjson, .cpp files only).
#pragma once
#include <optional>
#include <string>
#include <string_view>

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

struct Templates {
  std::string prompt, completion;
};

}  // namespace qsft
