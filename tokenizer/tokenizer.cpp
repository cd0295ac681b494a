#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>

#include "engine/base/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/nfc.h"
#include "tokenizer/tokenizer_files.h"
#include "tokenizer/utf8.h"

namespace qsft {

namespace {

std::vector<const AddedToken*> select(const std::vector<std::unique_ptr<AddedToken>>& all, bool normalized) {
  std::vector<const AddedToken*> out;
  for (auto& t : all)
    if (t->normalized == normalized) out.push_back(t.get());
  return out;
}

std::vector<std::unique_ptr<AddedToken>> own(std::vector<AddedToken> tokens) {
  std::vector<std::unique_ptr<AddedToken>> out;
  for (auto& t : tokens) out.push_back(std::make_unique<AddedToken>(std::move(t)));
  return out;
}

BpeModel build_bpe(TokenizerParts& parts) {
  try {
    return BpeModel(std::move(parts.vocab), parts.merges, parts.ignore_merges);
  } catch (const std::invalid_argument& e) {
    throw input_error(parts.source, e.what());
  }
}

}  // namespace

Tokenizer::Tokenizer(TokenizerParts parts)
    : bpe_(build_bpe(parts)),
      added_(own(std::move(parts.added))),
      raw_matcher_(select(added_, false)),
      normalized_matcher_(select(added_, true)),
      nfc_(parts.nfc),
      prefix_ids_(std::move(parts.prefix_ids)),
      suffix_ids_(std::move(parts.suffix_ids)) {
  vocab_size_ = bpe_.id_limit();
  for (auto& t : added_) {
    // Hugging Face's ByteLevel decoder maps an added token's characters back to bytes when all of them are in
    // the byte-level alphabet, and keeps its text as it is otherwise.
    auto bytes = byte_level::to_bytes(t->content);
    added_by_id_[t->id] = {t.get(), bytes ? *bytes : t->content};
    vocab_size_ = std::max(vocab_size_, t->id + 1);
  }
}

Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& model_dir) {
  namespace fs = std::filesystem;
  const fs::path dir(model_dir);
  const TokenIdLimit ids = read_model_id_limit((dir / "config.json").string());
  TokenizerConfig cfg = read_tokenizer_config((dir / "tokenizer_config.json").string(), ids);
  std::optional<Tokenizer> tok;
  if (fs::exists(dir / "tokenizer.json")) {
    tok.emplace(Tokenizer(read_tokenizer_json((dir / "tokenizer.json").string(), ids)));
  } else if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) {
    tok.emplace(Tokenizer(read_vocab_merges((dir / "vocab.json").string(), (dir / "merges.txt").string(),
                                            cfg.added_tokens_decoder, ids)));
  } else {
    throw input_error(model_dir, "no tokenizer.json (nor vocab.json + merges.txt) in the model folder");
  }
  auto id_of = [&](const std::optional<std::string>& name, const char* key) {
    if (!name) return -1;
    int32_t id = tok->token_id(*name);
    if (id < 0)
      throw input_error((dir / "tokenizer_config.json").string(),
                        std::string(key) + ": '" + *name + "' is not a token of the tokenizer");
    return id;
  };
  tok->bos_id_ = id_of(cfg.bos_token, "bos_token");
  tok->eos_id_ = id_of(cfg.eos_token, "eos_token");
  tok->pad_id_ = id_of(cfg.pad_token, "pad_token");
  // Without a configured BOS, the one token the post-processor puts first is the BOS (DeepSeek-R1-Distill).
  if (tok->bos_id_ < 0 && tok->prefix_ids_.size() == 1) tok->bos_id_ = tok->prefix_ids_[0];
  return std::move(*tok);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> ids;
  if (add_special_tokens) ids = prefix_ids_;
  encode_into(text, ids, nullptr);
  if (add_special_tokens) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
  return ids;
}

void Tokenizer::encode_into(std::string_view text, std::vector<int32_t>& ids, std::vector<ByteSpan>* spans) const {
  if (size_t bad = utf8::find_invalid(text); bad != std::string_view::npos)
    throw InputError("text is not valid UTF-8 (at byte " + std::to_string(bad) + ")");
  std::string storage;
  size_t out_pos = 0;  // length of the normalised text so far (spans are offsets into it)
  for (size_t pos = 0; pos <= text.size();) {
    AddedTokenMatcher::Match m = raw_matcher_.find(text, pos);
    size_t segment_end = m.token ? m.begin : text.size();
    if (segment_end > pos) {
      std::string_view normalized = text.substr(pos, segment_end - pos);
      if (nfc_) normalized = nfc(normalized, &storage);
      encode_normalized(normalized, out_pos, ids, spans);
      out_pos += normalized.size();
    }
    if (!m.token) break;
    ids.push_back(m.token->id);
    if (spans)
      spans->push_back({static_cast<uint32_t>(out_pos), static_cast<uint32_t>(out_pos + m.token->content.size())});
    out_pos += m.token->content.size();
    pos = m.end;
  }
}

// Normalised text: added tokens that match on normalised text, and ordinary text between them.
void Tokenizer::encode_normalized(std::string_view text, size_t base, std::vector<int32_t>& ids,
                                  std::vector<ByteSpan>* spans) const {
  for (size_t pos = 0; pos < text.size();) {
    AddedTokenMatcher::Match m = normalized_matcher_.find(text, pos);
    size_t segment_end = m.token ? m.begin : text.size();
    if (segment_end > pos) encode_ordinary(text.substr(pos, segment_end - pos), base + pos, ids, spans);
    if (!m.token) break;
    ids.push_back(m.token->id);
    if (spans) spans->push_back({static_cast<uint32_t>(base + m.begin), static_cast<uint32_t>(base + m.end)});
    pos = m.end;
  }
}

void Tokenizer::encode_ordinary(std::string_view text, size_t base, std::vector<int32_t>& ids,
                                std::vector<ByteSpan>* spans) const {
  thread_local std::vector<ByteSpan> pieces;
  pieces.clear();
  pretokenize_qwen2(text, pieces);
  for (ByteSpan p : pieces) {
    size_t first = ids.size();
    bpe_.encode_piece(text.substr(p.begin, p.end - p.begin), ids);
    if (!spans) continue;
    size_t at = base + p.begin;
    for (size_t i = first; i < ids.size(); ++i) {
      size_t len = bpe_.bytes_of(ids[i]).size();
      spans->push_back({static_cast<uint32_t>(at), static_cast<uint32_t>(at + len)});
      at += len;
    }
  }
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (auto it = added_by_id_.find(id); it != added_by_id_.end()) {
      if (!skip_special_tokens || !it->second.token->special) bytes += it->second.bytes;
    } else if (id >= 0 && id < bpe_.id_limit() && !bpe_.bytes_of(id).empty()) {
      bytes += bpe_.bytes_of(id);
    } else {
      throw InputError("token id " + std::to_string(id) + " is not in the vocabulary");
    }
  }
  return utf8::to_valid_lossy(bytes);
}

std::string Tokenizer::normalize(std::string_view text) const {
  if (!nfc_) return std::string(text);
  std::string storage;
  return std::string(nfc(text, &storage));
}

int32_t Tokenizer::token_id(std::string_view token) const {
  for (auto& t : added_)
    if (t->content == token) return t->id;
  auto bytes = byte_level::to_bytes(token);
  return bytes ? bpe_.id_of(*bytes) : -1;
}

bool Tokenizer::is_special(int32_t id) const {
  auto it = added_by_id_.find(id);
  return it != added_by_id_.end() && it->second.token->special;
}

}  // namespace qsft
