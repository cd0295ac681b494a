#include "tokenizer/chat_format.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/base/error.h"
#include "tokenizer/chat_formats.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer_files.h"

namespace qsft {

namespace {

constexpr std::string_view kDeepSeekBos = "<｜begin▁of▁sentence｜>";

// The chat templates recognised, by FNV-1a 64 of the template text without trailing whitespace.
struct KnownTemplate {
  uint64_t fingerprint;
  const char* format;
};
constexpr KnownTemplate kKnownTemplates[] = {
    {0xe642ce246d7f2e3dull, "qwen2.5"},                 // Qwen2.5-Instruct (tools, default system prompt)
    {0x845fdf813c637ee2ull, "deepseek-r1-distill"},     // DeepSeek-R1-Distill: generation prompt with <think>
    {0x9c0722939a9b83ecull, "deepseek-r1-distill-v1"},  // DeepSeek-R1-Distill, first release: without it
};

uint64_t fingerprint(std::string_view text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\n' || text.back() == '\r' || text.back() == '\t'))
    text.remove_suffix(1);
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

std::string formats_hint() {
  std::string s;
  for (auto& n : ChatFormat::names()) s += (s.empty() ? "" : ", ") + n;
  return "choose one with the config key chat_format (qwen-sft tokenize: --chat-format): " + s;
}

// bos: the configured BOS text ("" when the model folder names none).
std::unique_ptr<ChatFormat> make(std::string_view name, std::string bos) {
  if (bos.empty()) bos = kDeepSeekBos;
  if (name == "qwen2.5") return make_qwen25_format();
  if (name == "deepseek-r1-distill") return make_deepseek_r1_format(true, std::move(bos));
  if (name == "deepseek-r1-distill-v1") return make_deepseek_r1_format(false, std::move(bos));
  return nullptr;
}

}  // namespace

void RenderedText::add(std::string_view s, bool is_trained) {
  if (s.empty()) return;
  auto begin = static_cast<uint32_t>(text.size());
  text += s;
  if (!is_trained) return;
  if (!trained.empty() && trained.back().end == begin)
    trained.back().end = static_cast<uint32_t>(text.size());
  else
    trained.push_back({begin, static_cast<uint32_t>(text.size())});
}

std::string ChatFormat::render(const Conversation& conv, bool add_generation_prompt) const {
  RenderedText out;
  render_into(conv, add_generation_prompt, out);
  return std::move(out.text);
}

Encoded ChatFormat::encode(const Conversation& conv, const Tokenizer& tok) const {
  RenderedText r;
  render_into(conv, false, r);
  // Normalise each trained and untrained run on its own, so that the trained ranges stay exact; runs meet at an
  // added token or a newline, where NFC of the whole equals NFC of the parts, so the tokenizer sees NFC text.
  std::string text;
  std::vector<ByteSpan> trained;
  size_t pos = 0;
  auto take = [&](size_t end, bool is_trained) {
    if (end == pos) return;
    auto begin = static_cast<uint32_t>(text.size());
    text += tok.normalize(std::string_view(r.text).substr(pos, end - pos));
    if (is_trained) trained.push_back({begin, static_cast<uint32_t>(text.size())});
    pos = end;
  };
  for (ByteSpan t : r.trained) {
    take(t.begin, false);
    take(t.end, true);
  }
  take(r.text.size(), false);

  Encoded e;
  std::vector<ByteSpan> spans;
  tok.encode_into(text, e.ids, &spans);
  QSFT_CHECK(spans.empty() || spans.back().end == text.size(), "normalisation changed the rendered text's length");
  e.mask.resize(e.ids.size());
  size_t k = 0;
  for (size_t i = 0; i < spans.size(); ++i) {
    while (k < trained.size() && trained[k].end <= spans[i].begin) ++k;
    e.mask[i] = k < trained.size() && trained[k].begin < spans[i].end;
  }
  return e;
}

Encoded ChatFormat::encode_completion(const Conversation& conv, size_t prompt_messages, const Tokenizer& tok) const {
  if (prompt_messages == 0 || prompt_messages >= conv.messages.size())
    throw InputError("a prompt-completion conversation needs at least one prompt and one completion message");
  Conversation prompt{{conv.messages.begin(), conv.messages.begin() + static_cast<ptrdiff_t>(prompt_messages)},
                      conv.tools_json};
  std::vector<int32_t> prompt_ids;
  tok.encode_into(render(prompt, true), prompt_ids, nullptr);
  Encoded e;
  tok.encode_into(render(conv, false), e.ids, nullptr);
  size_t common = 0;
  while (common < prompt_ids.size() && common < e.ids.size() && prompt_ids[common] == e.ids[common]) ++common;
  e.mask.assign(e.ids.size(), 1);
  std::fill(e.mask.begin(), e.mask.begin() + static_cast<ptrdiff_t>(common), 0);
  return e;
}

std::vector<std::string> ChatFormat::names() { return {"qwen2.5", "deepseek-r1-distill", "deepseek-r1-distill-v1"}; }

std::unique_ptr<ChatFormat> ChatFormat::by_name(const std::string& name) {
  auto f = make(name, "");
  if (!f) throw InputError("chat_format: unknown format '" + name + "'; " + formats_hint());
  return f;
}

std::unique_ptr<ChatFormat> ChatFormat::for_model(const std::string& model_dir, const std::string& forced_name) {
  namespace fs = std::filesystem;
  const fs::path dir(model_dir);
  const std::string config_path = (dir / "tokenizer_config.json").string();
  TokenizerConfig cfg = read_tokenizer_config(config_path);
  std::string bos = cfg.bos_token.value_or("");
  if (!forced_name.empty() && forced_name != "jinja") {
    auto f = make(forced_name, bos);
    if (!f) throw InputError("chat_format: unknown format '" + forced_name + "'; " + formats_hint());
    return f;
  }
  // transformers reads chat_template.jinja when the folder has one, the config's chat_template otherwise.
  std::string source = (dir / "chat_template.jinja").string();
  std::optional<std::string> tmpl;
  if (fs::exists(source)) {
    std::ifstream in(source, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    tmpl = ss.str();
  } else {
    source = config_path;
    tmpl = cfg.chat_template;
  }
  if (!tmpl) throw input_error(model_dir, "the model has no chat template; " + formats_hint());
  // A built-in format is the fast path for the templates it renders; any other template (or chat_format
  // "jinja") is rendered by the template engine (tokenizer/chat_template.h).
  if (forced_name.empty()) {
    uint64_t fp = fingerprint(*tmpl);
    for (const KnownTemplate& k : kKnownTemplates)
      if (k.fingerprint == fp) return make(k.format, bos);
  }
  return make_jinja_format(*tmpl, source, {cfg.bos_token, cfg.eos_token, cfg.pad_token});
}

}  // namespace qsft
