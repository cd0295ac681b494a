// qwen-sft tokenize: JSONL on stdin -> JSONL on stdout, one line per input line.
//   {"text": ...}                      -> {"ids": [...]}
//   {"messages": [...], "tools": [...]} -> {"ids": [...], "mask": [...]}  (mask 1 = trained assistant output)
//   {"prompt": [...], "completion": [...]} -> {"ids": [...], "mask": [...]}  (mask 1 = the completion)
//   with --render: conversations       -> {"text": ...}  (the chat template's text)
//   with --decode: {"ids": [...]}       -> {"text": ...}
//   with --chat: a record of any dataset format -> {"ids": [...], "mask": [...]} exactly as training encodes it
//                (data/record_encoder.h: format detection, chat format, loss mask, EOS, keep_start truncation;
//                the data options of --config cfg.json, else the defaults)
#include <simdjson.h>

#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>

#include "data/record_encoder.h"
#include "engine/base/error.h"
#include "engine/base/json_text.h"
#include "engine/train/train_config.h"
#include "tokenizer/chat_format.h"
#include "tokenizer/conversation_json.h"
#include "tokenizer/tokenizer.h"
#include "tools/cli.h"

namespace qsft::cli {
namespace {

namespace dom = simdjson::dom;

template <class T>
void append_list(std::string& out, const char* key, const std::vector<T>& v) {
  out += '"';
  out += key;
  out += "\": [";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(v[i]);
  }
  out += ']';
}

// {"ids": [...], "mask": [...]}
std::string ids_and_mask(const Encoded& e) {
  std::string out = "{";
  append_list(out, "ids", e.ids);
  out += ", ";
  append_list(out, "mask", e.mask);
  return out + "}";
}

struct Options {
  bool decode = false, render = false, generation_prompt = false, special_tokens = true, skip_special = false;
};

// Errors name the field; the caller adds the line.
std::string decode_line(const Tokenizer& tok, dom::element root, const Options& opt) {
  dom::array ids;
  if (root.at_key("ids").get_array().get(ids)) throw InputError("ids: expected a list of token ids");
  std::vector<int32_t> v;
  for (dom::element id : ids) {
    int64_t i;
    if (id.get_int64().get(i) || i < INT32_MIN || i > INT32_MAX) throw InputError("ids: expected 32-bit integers");
    v.push_back(static_cast<int32_t>(i));
  }
  std::string out = "{\"text\": ";
  append_json_string(out, tok.decode(v, opt.skip_special));
  return out + "}";
}

// chat: the model's chat format, or nullptr with chat_error saying why there is none.
std::string encode_line(const Tokenizer& tok, const ChatFormat* chat, const std::string& chat_error, dom::element root,
                        std::string_view line, const Options& opt) {
  std::string_view text;
  if (!root.at_key("text").get_string().get(text)) {
    std::string out = "{";
    append_list(out, "ids", tok.encode(text, opt.special_tokens));
    return out + "}";
  }
  if (root.at_key("messages").error() && root.at_key("prompt").error())
    throw InputError("expected {\"text\": ...}, {\"messages\": ...} or {\"prompt\": [...], \"completion\": [...]}");
  if (!chat) throw InputError(chat_error);
  size_t prompt_messages = 0;
  Conversation conv = parse_conversation_json(line, "record", &prompt_messages);
  if (!opt.render) {
    if (prompt_messages) return ids_and_mask(chat->encode_completion(conv, prompt_messages, tok));
    return ids_and_mask(chat->encode(conv, tok));
  }
  std::string out = "{\"text\": ";
  append_json_string(out, chat->render(conv, opt.generation_prompt));
  return out + "}";
}

// Prints each(line) per non-empty line of stdin; an error names the line and stops.
template <class F>
void for_each_line(F&& each) {
  std::string line;
  for (size_t line_no = 1; std::getline(std::cin, line); ++line_no) {
    if (line.empty()) continue;
    const std::string where = "stdin line " + std::to_string(line_no);
    std::string out;
    try {
      out = each(line);
    } catch (const InputError& e) {
      throw InputError(where + ": " + e.what());
    }
    out += '\n';
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
}

// --chat: the training pipeline's encoding of each record.
int run_records(const Flags& f) {
  DataConfig cfg;
  std::string model = f.get("model");
  if (f.has("config")) {
    const TrainConfig tc = load_train_config(f.get("config"), {});
    cfg = run_data_config(tc);
    if (model.empty()) model = tc.model;
  }
  if (model.empty()) throw UsageError("--model DIR (or --config cfg.json) is required");
  if (f.has("chat-format")) cfg.chat_format = f.get("chat-format");
  RecordEncoder records(cfg, model);
  for_each_line([&](const std::string& line) { return ids_and_mask(records.encode(line)); });
  return 0;
}

int run(const Args& args) {
  Flags f = parse_flags(args, {"model", "chat-format", "config"},
                        {"decode", "render", "generation-prompt", "no-special-tokens", "skip-special-tokens", "chat"});
  if (f.has("chat") && (f.has("decode") || f.has("render")))
    throw UsageError("--chat goes without --decode and --render");
  if (f.has("chat")) return run_records(f);
  if (f.has("config")) throw UsageError("--config goes with --chat");
  if (!f.has("model")) throw UsageError("--model DIR is required");
  const std::string model = f.get("model");
  Options opt{f.has("decode"), f.has("render"), f.has("generation-prompt"), !f.has("no-special-tokens"),
              f.has("skip-special-tokens")};
  Tokenizer tok = Tokenizer::load(model);
  std::unique_ptr<ChatFormat> chat;
  std::string chat_error;
  try {
    chat = ChatFormat::for_model(model, f.get("chat-format"));
  } catch (const InputError& e) {
    if (f.has("chat-format")) throw;
    chat_error = e.what();
  }
  dom::parser parser;
  for_each_line([&](const std::string& line) {
    dom::element root;
    if (auto err = parser.parse(line).get(root)) throw InputError(std::string("not valid JSON: ") + error_message(err));
    return opt.decode ? decode_line(tok, root, opt) : encode_line(tok, chat.get(), chat_error, root, line, opt);
  });
  return 0;
}

const bool registered = register_command(
    {"tokenize",
     "--model DIR [--chat-format NAME] [--decode [--skip-special-tokens]] [--render [--generation-prompt]] "
     "[--no-special-tokens] [--chat [--config cfg.json]]  < in.jsonl > out.jsonl",
     "JSONL on stdin -> JSONL on stdout, one line per line: token ids (+ loss mask), or text", run,
     "  (default)            {\"text\"} -> {\"ids\"}; {\"messages\", \"tools\"} or {\"prompt\", \"completion\"} -> "
     "{\"ids\", \"mask\"}\n"
     "                       (mask 1 = a trained token: the assistant's output, or the completion)\n"
     "  --model DIR          the model folder with tokenizer.json (and the chat template)\n"
     "  --chat-format NAME   the chat format instead of the model's own\n"
     "  --decode             {\"ids\"} -> {\"text\"}; --skip-special-tokens leaves special tokens out\n"
     "  --render             conversations -> {\"text\"}: the chat template's text; --generation-prompt adds the\n"
     "                       assistant header a generation starts from\n"
     "  --no-special-tokens  {\"text\"} is encoded without recognising special tokens in it\n"
     "  --chat               records of any dataset format (as training reads them) -> {\"ids\", \"mask\"}: exactly\n"
     "                       what training uses; --config cfg.json takes a training config's data options (and its\n"
     "                       model unless --model is given)\n"});

}  // namespace
}  // namespace qsft::cli
