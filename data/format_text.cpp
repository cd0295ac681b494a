// Instruction and text formats: Alpaca, prompt/completion, text, field templates, pre-tokenized ids.
#include "data/record_format_internal.h"
#include "engine/base/brace_fields.h"
#include "tokenizer/conversation_json_internal.h"

namespace qsft {

using namespace json_fields;

namespace {

// The text a template field takes: a string as it is, a number or boolean as JSON writes it.
std::string field_text(dom::element record, const std::string& key) {
  auto v = field(record, key);
  if (!v) bad_field(key, "the template names {" + key + "} but the record has no such field (or it is null)");
  if (v->is_string()) return std::string(v->get_string().value());
  if (v->is_array() || v->is_object())
    bad_field(key, std::string("a template field must be text, got ") + type_name(*v));
  return simdjson::minify(*v);
}

// Python str.format-style (engine/base/brace_fields.h): "{Field}" replaced by the record's field, "{{" and "}}" by
// a brace; a lone '}' or an unclosed '{' is an error, as in Python.
std::string fill_template(std::string_view tmpl, dom::element record, const std::string& which) {
  std::string out;
  scan_brace_fields(
      tmpl, [&](char c) { out += c; }, [&](std::string_view key) { out += field_text(record, std::string(key)); },
      [&](BraceError e) {
        throw InputError(which + (e == BraceError::lone_close ? ": a lone '}' (write '}}' for a brace)"
                                                              : ": '{' without a closing '}'"));
      });
  return out;
}

std::vector<int32_t> int_list(dom::element v, const std::string& name) {
  std::vector<int32_t> out;
  size_t i = 0;
  for (dom::element x : as_list(v, name)) {
    int64_t n;
    if (x.get_int64().get(n) || n < INT32_MIN || n > INT32_MAX)
      bad_field(name + "[" + std::to_string(i) + "]", std::string("expected an integer, got ") + type_name(x));
    out.push_back(int32_t(n));
    ++i;
  }
  return out;
}

}  // namespace

Example alpaca_example(dom::element record) {
  Example ex;
  ex.kind = Example::Kind::conversation;
  auto& msgs = ex.conv.messages;
  std::string_view system = optional_string(record, "system", "system");
  if (!system.empty()) msgs.push_back({"system", std::string(system), {}, {}});
  if (auto history = field(record, "history")) {
    size_t i = 0;
    for (dom::element pair : as_list(*history, "history")) {
      const std::string name = "history[" + std::to_string(i++) + "]";
      dom::array turns = as_list(pair, name);
      if (turns.size() != 2) bad_field(name, "expected [instruction, response]");
      msgs.push_back({"user", std::string(as_string(turns.at(0).value(), name + "[0]")), {}, {}});
      msgs.push_back({"assistant", std::string(as_string(turns.at(1).value(), name + "[1]")), {}, {}});
    }
  }
  std::string user(required_string(record, "instruction", "instruction"));
  std::string_view input = optional_string(record, "input", "input");
  if (!input.empty()) user.append("\n").append(input);
  std::string_view output = required_string(record, "output", "output");
  if (output.empty()) bad_field("output", "empty (the response to train on)");
  msgs.push_back({"user", std::move(user), {}, {}});
  msgs.push_back({"assistant", std::string(output), {}, {}});
  return ex;
}

Example prompt_completion_example(dom::element record) {
  dom::element prompt = required(record, "prompt", "prompt");
  dom::element completion = required(record, "completion", "completion");
  Example ex;
  if (prompt.is_array() || completion.is_array()) {
    ex.kind = Example::Kind::conversation;
    ex.conv = read_conversation(record, Reading::for_training, &ex.prompt_messages);
    return ex;
  }
  ex.prompt = std::string(as_string(prompt, "prompt"));
  ex.completion = std::string(as_string(completion, "completion"));
  return ex;
}

Example text_example(dom::element record) {
  Example ex;
  ex.completion = std::string(required_string(record, "text", "text"));
  if (ex.completion.empty()) bad_field("text", "empty");
  return ex;
}

Example templated_example(dom::element record, const Templates& templates) {
  Example ex;
  ex.prompt = fill_template(templates.prompt, record, "data.prompt_template");
  ex.completion = fill_template(templates.completion, record, "data.completion_template");
  return ex;
}

Example tokens_example(dom::element record) {
  Example ex;
  ex.kind = Example::Kind::tokens;
  ex.ids = int_list(required(record, "input_ids", "input_ids"), "input_ids");
  if (ex.ids.empty()) bad_field("input_ids", "empty");
  auto check_length = [&](size_t n, const char* name) {
    if (n != ex.ids.size())
      bad_field(name, std::to_string(n) + " values for " + std::to_string(ex.ids.size()) + " input_ids");
  };
  if (auto labels = field(record, "labels")) {
    std::vector<int32_t> l = int_list(*labels, "labels");
    check_length(l.size(), "labels");
    for (int32_t x : l) ex.mask.push_back(x != -100);
    return ex;
  }
  for (const char* key : {"mask", "assistant_masks", "completion_mask"}) {
    if (auto m = field(record, key)) {
      for (int32_t x : int_list(*m, key)) ex.mask.push_back(x != 0);
      check_length(ex.mask.size(), key);
      return ex;
    }
  }
  return ex;
}

}  // namespace qsft
