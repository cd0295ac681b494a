#include "tokenizer/tokenizer_files.h"

#include <simdjson.h>

#include <filesystem>
#include <fstream>
#include <unordered_map>

#include "engine/base/error.h"
#include "engine/base/json_reader.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"

namespace qsft {

namespace dom = simdjson::dom;

namespace {

// One parsed JSON file and error reporting that names the file and the field.
struct JsonFile {
  std::string path;
  json::Document doc;
  dom::element root;

  explicit JsonFile(std::string p) : path(std::move(p)), doc(path, json::read_text_file(path)), root(doc.root()) {}
  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw input_error(path, field + ": " + what);
  }
  std::optional<dom::element> field(dom::element obj, std::string_view key) const {
    dom::element v;
    if (obj.type() != dom::element_type::OBJECT || obj.at_key(key).get(v) || v.is_null()) return std::nullopt;
    return v;
  }
  std::string_view string(dom::element v, const std::string& name) const {
    std::string_view s;
    if (v.get_string().get(s)) fail(name, "expected a string");
    return s;
  }
  int64_t integer(dom::element v, const std::string& name) const {
    int64_t i;
    if (v.get_int64().get(i)) fail(name, "expected an integer");
    return i;
  }
  // A token's id, in [0, ids.limit) (checked before it is narrowed to 32 bits).
  int32_t token_id(dom::element v, const std::string& name, std::string_view token, const TokenIdLimit& ids) const {
    return token_id(integer(v, name), name, token, ids);
  }
  int32_t token_id(int64_t id, const std::string& name, std::string_view token, const TokenIdLimit& ids) const {
    if (id < 0 || id >= ids.limit)
      fail(name, "token '" + std::string(token) + "' has id " + std::to_string(id) + ", outside 0.." +
                     std::to_string(ids.limit - 1) + " (" + ids.why + ")");
    return static_cast<int32_t>(id);
  }
  bool flag(dom::element obj, std::string_view key, const std::string& name) const {
    auto v = field(obj, key);
    bool b = false;
    if (v && v->get_bool().get(b)) fail(name + "." + std::string(key), "expected true or false");
    return b;
  }
  std::string_view type_of(std::optional<dom::element> v, const std::string& name) const {
    if (!v) return "";
    auto t = field(*v, "type");
    if (!t) fail(name, "has no \"type\"");
    return string(*t, name + ".type");
  }
};

std::string raw_bytes(const JsonFile& f, std::string_view token, const std::string& field) {
  auto bytes = byte_level::to_bytes(token);
  if (!bytes) f.fail(field, "token '" + std::string(token) + "' is not written in the byte-level alphabet");
  return *bytes;
}

// Ids already given to a token of one list (the vocabulary, or the added tokens): a second one is an error.
class IdsSeen {
 public:
  void add(const JsonFile& f, int32_t id, std::string_view token, const std::string& name) {
    auto [it, fresh] = token_of_.emplace(id, token);
    if (!fresh)
      f.fail(name, "tokens '" + std::string(it->second) + "' and '" + std::string(token) + "' both have id " +
                       std::to_string(id));
  }

 private:
  std::unordered_map<int32_t, std::string_view> token_of_;  // views into the parsed file, which outlives this
};

// The vocabulary of tokenizer.json or vocab.json: token (byte-level alphabet) -> id.
void read_vocab(const JsonFile& f, dom::object vocab, const std::string& name, const TokenIdLimit& ids,
                TokenizerParts& parts) {
  IdsSeen seen;
  parts.vocab.reserve(vocab.size());
  for (auto [token, v] : vocab) {
    const int32_t id = f.token_id(v, name, token, ids);
    seen.add(f, id, token, name);
    parts.vocab.emplace(raw_bytes(f, token, name), id);
  }
}

// An added token whose id is `id` (a field of it, or its key in added_tokens_decoder).
AddedToken read_added_token(const JsonFile& f, dom::element t, int64_t id, const std::string& name,
                            const TokenIdLimit& ids, IdsSeen& seen) {
  auto content = f.field(t, "content");
  if (!content) f.fail(name, "has no \"content\"");
  for (const char* unsupported : {"lstrip", "rstrip", "single_word"})
    if (f.flag(t, unsupported, name)) f.fail(name, std::string(unsupported) + "=true is not supported");
  std::string_view text = f.string(*content, name + ".content");
  const int32_t token_id = f.token_id(id, name + ".id", text, ids);
  seen.add(f, token_id, text, name + ".id");
  return {token_id, std::string(text), f.flag(t, "special", name), f.flag(t, "normalized", name)};
}

void check_pre_tokenizer(const JsonFile& f, std::optional<dom::element> pre) {
  const std::string name = "pre_tokenizer";
  const std::string unsupported = "only the Qwen2 pre-tokenizer (Split with its pattern, then ByteLevel) is supported";
  if (f.type_of(pre, name) != "Sequence") f.fail(name, unsupported);
  dom::array steps;
  if (!f.field(*pre, "pretokenizers") || f.field(*pre, "pretokenizers")->get_array().get(steps) || steps.size() != 2)
    f.fail(name, unsupported);
  dom::element split = steps.at(0).value(), byte_level = steps.at(1).value();
  auto pattern = f.field(split, "pattern");
  auto regex = pattern ? f.field(*pattern, "Regex") : std::nullopt;
  auto behavior = f.field(split, "behavior");
  if (f.type_of(split, name) != "Split" || !regex || f.string(*regex, name + ".pattern") != kQwen2SplitPattern ||
      !behavior || f.string(*behavior, name + ".behavior") != "Isolated" || f.flag(split, "invert", name))
    f.fail(name, unsupported);
  if (f.type_of(byte_level, name) != "ByteLevel" || f.flag(byte_level, "add_prefix_space", name) ||
      f.flag(byte_level, "use_regex", name))
    f.fail(name, unsupported);
}

bool read_normalizer(const JsonFile& f, std::optional<dom::element> norm) {
  const std::string name = "normalizer";
  std::string_view type = f.type_of(norm, name);
  if (type.empty()) return false;
  if (type == "NFC") return true;
  dom::array steps;
  if (type == "Sequence" && f.field(*norm, "normalizers") && !f.field(*norm, "normalizers")->get_array().get(steps)) {
    if (steps.size() == 0) return false;
    if (steps.size() == 1 && f.type_of(steps.at(0).value(), name) == "NFC") return true;
  }
  f.fail(name, "only NFC (or no normalizer) is supported");
}

// Post-processors: ByteLevel (ids unchanged), TemplateProcessing (special tokens around the sequence), or a
// Sequence of them.
void read_post_processor(const JsonFile& f, std::optional<dom::element> post, const TokenIdLimit& ids,
                         TokenizerParts& parts) {
  const std::string name = "post_processor";
  std::string_view type = f.type_of(post, name);
  if (type.empty() || type == "ByteLevel") return;
  if (type == "Sequence") {
    auto steps = f.field(*post, "processors");
    dom::array arr;
    if (!steps || steps->get_array().get(arr)) f.fail(name, "Sequence without \"processors\"");
    for (dom::element step : arr) read_post_processor(f, step, ids, parts);
    return;
  }
  if (type != "TemplateProcessing") f.fail(name, "type " + std::string(type) + " is not supported");
  auto single = f.field(*post, "single");
  auto specials = f.field(*post, "special_tokens");
  dom::array items;
  if (!single || single->get_array().get(items)) f.fail(name + ".single", "expected a list");
  bool seen_sequence = false;
  for (dom::element item : items) {
    if (f.field(item, "Sequence")) {
      seen_sequence = true;
      continue;
    }
    auto special = f.field(item, "SpecialToken");
    auto sid = special ? f.field(*special, "id") : std::nullopt;
    if (!sid) f.fail(name + ".single", "expected Sequence or SpecialToken items");
    auto entry = specials ? f.field(*specials, f.string(*sid, name + ".single")) : std::nullopt;
    auto entry_ids = entry ? f.field(*entry, "ids") : std::nullopt;
    dom::array id_list;
    if (!entry_ids || entry_ids->get_array().get(id_list))
      f.fail(name + ".special_tokens", "no ids for a SpecialToken");
    for (dom::element id : id_list)
      (seen_sequence ? parts.suffix_ids : parts.prefix_ids)
          .push_back(f.token_id(id, name + ".special_tokens", f.string(*sid, name + ".single"), ids));
  }
}

void read_model(const JsonFile& f, dom::element model, const TokenIdLimit& ids, TokenizerParts& parts) {
  if (f.type_of(model, "model") != "BPE") f.fail("model.type", "only BPE models are supported");
  if (f.flag(model, "byte_fallback", "model")) f.fail("model.byte_fallback", "true is not supported");
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (auto v = f.field(model, affix); v && !f.string(*v, affix).empty())
      f.fail(std::string("model.") + affix, "must be empty");
  if (auto dropout = f.field(model, "dropout")) f.fail("model.dropout", "must be null (no BPE dropout)");
  parts.ignore_merges = f.flag(model, "ignore_merges", "model");
  dom::object vocab;
  if (!f.field(model, "vocab") || f.field(model, "vocab")->get_object().get(vocab))
    f.fail("model.vocab", "expected an object");
  read_vocab(f, vocab, "model.vocab", ids, parts);
  dom::array merges;
  if (!f.field(model, "merges") || f.field(model, "merges")->get_array().get(merges))
    f.fail("model.merges", "expected a list");
  parts.merges.reserve(merges.size());
  size_t rank = 0;
  for (dom::element m : merges) {
    const std::string name = "model.merges[" + std::to_string(rank++) + "]";
    std::string_view left, right;
    dom::array pair;
    if (!m.get_array().get(pair) && pair.size() == 2) {
      left = f.string(pair.at(0).value(), name), right = f.string(pair.at(1).value(), name);
    } else {
      std::string_view s = f.string(m, name);
      size_t space = s.find(' ');
      if (space == std::string_view::npos || s.find(' ', space + 1) != std::string_view::npos)
        f.fail(name, "expected \"left right\"");
      left = s.substr(0, space), right = s.substr(space + 1);
    }
    parts.merges.push_back({raw_bytes(f, left, name), raw_bytes(f, right, name)});
  }
}

}  // namespace

TokenIdLimit read_model_id_limit(const std::string& config_path) {
  if (!std::filesystem::exists(config_path)) return {};
  JsonFile f(config_path);
  auto v = f.field(f.root, "vocab_size");
  if (!v) return {};
  const int64_t n = f.integer(*v, "vocab_size");
  if (n <= 0 || n > kMaxTokenIds)
    f.fail("vocab_size", std::to_string(n) + " is outside 1.." + std::to_string(kMaxTokenIds));
  return {n, "the model's vocab_size in " + config_path};
}

TokenizerParts read_tokenizer_json(const std::string& path, const TokenIdLimit& ids) {
  JsonFile f(path);
  TokenizerParts parts;
  parts.source = path;
  auto model = f.field(f.root, "model");
  if (!model) f.fail("model", "missing");
  read_model(f, *model, ids, parts);
  parts.nfc = read_normalizer(f, f.field(f.root, "normalizer"));
  check_pre_tokenizer(f, f.field(f.root, "pre_tokenizer"));
  if (f.type_of(f.field(f.root, "decoder"), "decoder") != "ByteLevel") f.fail("decoder", "only ByteLevel is supported");
  read_post_processor(f, f.field(f.root, "post_processor"), ids, parts);
  auto added = f.field(f.root, "added_tokens");  // absent or null: none
  dom::array list;
  if (added && added->get_array().get(list)) f.fail("added_tokens", "expected a list");
  if (!added) return parts;
  IdsSeen seen;
  size_t i = 0;
  for (dom::element t : list) {
    const std::string name = "added_tokens[" + std::to_string(i++) + "]";
    auto id = f.field(t, "id");
    if (!id) f.fail(name, "has no \"id\"");
    parts.added.push_back(read_added_token(f, t, f.integer(*id, name + ".id"), name, ids, seen));
  }
  return parts;
}

TokenizerParts read_vocab_merges(const std::string& vocab_path, const std::string& merges_path,
                                 const std::vector<AddedToken>& added, const TokenIdLimit& ids) {
  JsonFile f(vocab_path);
  TokenizerParts parts;
  parts.source = vocab_path + " + " + merges_path;
  dom::object vocab;
  if (f.root.get_object().get(vocab)) f.fail("(top level)", "expected an object of token -> id");
  read_vocab(f, vocab, "vocab", ids, parts);
  std::ifstream in(merges_path, std::ios::binary);
  if (!in) throw input_error(merges_path, "cannot read the file");
  std::string line;
  for (size_t line_no = 1; std::getline(in, line); ++line_no) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
    size_t space = line.find(' ');
    if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
      throw input_error(merges_path, "line " + std::to_string(line_no) + ": expected \"left right\"");
    auto left = byte_level::to_bytes(std::string_view(line).substr(0, space));
    auto right = byte_level::to_bytes(std::string_view(line).substr(space + 1));
    if (!left || !right)
      throw input_error(merges_path, "line " + std::to_string(line_no) + ": not written in the byte-level alphabet");
    parts.merges.push_back({*left, *right});
  }
  parts.added = added;
  return parts;
}

TokenizerConfig read_tokenizer_config(const std::string& path, const TokenIdLimit& ids) {
  TokenizerConfig cfg;
  if (!std::filesystem::exists(path)) return cfg;
  JsonFile f(path);
  // A special token is written as its text or as {"content": text, ...}.
  auto token_name = [&](const char* key) -> std::optional<std::string> {
    auto v = f.field(f.root, key);
    if (!v) return std::nullopt;
    if (v->type() == dom::element_type::OBJECT) {
      auto content = f.field(*v, "content");
      if (!content) f.fail(key, "has no \"content\"");
      return std::string(f.string(*content, key));
    }
    return std::string(f.string(*v, key));
  };
  cfg.bos_token = token_name("bos_token");
  cfg.eos_token = token_name("eos_token");
  cfg.pad_token = token_name("pad_token");
  if (auto decoder = f.field(f.root, "added_tokens_decoder")) {
    dom::object tokens;
    if (decoder->get_object().get(tokens)) f.fail("added_tokens_decoder", "expected an object");
    IdsSeen seen;
    for (auto [id_text, t] : tokens) {
      const std::string name = "added_tokens_decoder." + std::string(id_text);
      int64_t id = -1;
      size_t used = 0;
      try {
        id = std::stoll(std::string(id_text), &used);
      } catch (const std::exception&) {
      }
      if (used == 0 || used != id_text.size()) f.fail(name, "the key is not a token id");
      cfg.added_tokens_decoder.push_back(read_added_token(f, t, id, name, ids, seen));
    }
  }
  if (auto tmpl = f.field(f.root, "chat_template")) {
    dom::array named;
    if (!tmpl->get_array().get(named)) {
      // [{"name": ..., "template": ...}]: the one named "default".
      for (dom::element entry : named) {
        auto n = f.field(entry, "name"), t = f.field(entry, "template");
        if (n && t && f.string(*n, "chat_template[].name") == "default")
          cfg.chat_template = std::string(f.string(*t, "chat_template[].template"));
      }
    } else {
      cfg.chat_template = std::string(f.string(*tmpl, "chat_template"));
    }
  }
  return cfg;
}

}  // namespace qsft
