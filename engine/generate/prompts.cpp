#include "engine/generate/prompts.h"

#include <simdjson.h>

#include <algorithm>
#include <fstream>

#include "tokenizer/conversation_json.h"

namespace qsft {

PromptEncoder::PromptEncoder(const std::string& model_dir, const std::string& chat_format)
    : tok_(Tokenizer::load(model_dir)) {
  try {
    chat_ = ChatFormat::for_model(model_dir, chat_format);
  } catch (const InputError& e) {
    if (!chat_format.empty()) throw;
    chat_error_ = e.what();
  }
}

std::vector<int32_t> PromptEncoder::encode(const Conversation& conv) const {
  if (chat_) return tok_.encode(chat_->render(conv, true));
  if (conv.messages.size() == 1 && conv.messages[0].role == "user") return tok_.encode(conv.messages[0].content);
  throw InputError("a message list needs a chat template, and this model has none (" + chat_error_ + ")");
}

std::string PromptEncoder::text(const std::vector<int32_t>& ids) const {
  std::vector<int32_t> known;
  std::copy_if(ids.begin(), ids.end(), std::back_inserter(known), [&](int32_t id) { return id < tok_.vocab_size(); });
  return tok_.decode(known, true);
}

static Conversation user_prompt(std::string_view text) {
  Message m;
  m.role = "user";
  m.content = std::string(text);
  return {{m}, {}};
}

Conversation parse_prompt_line(const std::string& line, const std::string& where) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto err = parser.parse(line).get(root))
    throw input_error(where, std::string("not valid JSON: ") + simdjson::error_message(err));
  std::string_view text;
  if (!root.get_string().get(text)) return user_prompt(text);
  if (root.is_array()) return parse_conversation_json("{\"messages\": " + line + "}", where);
  if (!root.at_key("prompt").get_string().get(text)) return user_prompt(text);
  if (!root.at_key("messages").error()) return parse_conversation_json(line, where);
  throw input_error(where, "expected a prompt string, a list of messages, {\"messages\": [...]} or {\"prompt\": \"...\"}");
}

std::vector<std::vector<int32_t>> read_prompts(const std::string& path, const PromptEncoder& enc) {
  std::ifstream in(path);
  if (!in) throw input_error(path, "cannot be read");
  std::vector<std::vector<int32_t>> prompts;
  std::string line;
  for (size_t no = 1; std::getline(in, line); ++no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + " line " + std::to_string(no);
    try {
      prompts.push_back(enc.encode(parse_prompt_line(line, where)));
    } catch (const InputError& e) {
      const std::string what = e.what();
      throw what.rfind(where, 0) == 0 ? e : input_error(where, what);
    }
  }
  if (prompts.empty()) throw input_error(path, "has no prompt");
  return prompts;
}

}  // namespace qsft
