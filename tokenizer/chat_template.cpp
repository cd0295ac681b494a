#include "tokenizer/chat_template.h"

#include <algorithm>

#include "tokenizer/jinja_template.h"

namespace qsft {

namespace {

using jinja::Value;

// A string no chat data contains: it marks where a message's content lands in a render.
constexpr std::string_view kSentinel = "\x01qsft-assistant-content\x02";

Value str(std::string_view s) { return Value::string(std::string(s)); }

Value message_value(const Message& m, size_t index) {
  Value content = m.content_null ? Value::none() : str(m.content);
  Value v = Value::dict({{str("role"), str(m.role)}, {str("content"), content}});
  if (m.reasoning_content) v.set(str("reasoning_content"), str(*m.reasoning_content));
  if (!m.tool_calls.empty()) {
    jinja::List calls;
    for (size_t k = 0; k < m.tool_calls.size(); ++k) {
      const ToolCall& c = m.tool_calls[k];
      const std::string where =
          "messages[" + std::to_string(index) + "].tool_calls[" + std::to_string(k) + "].arguments";
      Value fn =
          Value::dict({{str("name"), str(c.name)}, {str("arguments"), Value::from_json(c.arguments_json, where)}});
      Value call = Value::dict({{str("type"), str("function")}, {str("function"), fn}});
      if (!c.id.empty()) call.set(str("id"), str(c.id));
      calls.push_back(std::move(call));
    }
    v.set(str("tool_calls"), Value::list(std::move(calls)));
  }
  if (!m.name.empty()) v.set(str("name"), str(m.name));
  return v;
}

size_t common_prefix(std::string_view a, std::string_view b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

size_t common_suffix(std::string_view a, std::string_view b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[a.size() - 1 - n] == b[b.size() - 1 - n]) ++n;
  return n;
}

class JinjaFormat : public ChatFormat {
 public:
  JinjaFormat(const std::string& text, std::string source, ChatTemplateVariables vars)
      : template_(parse(text, source)), source_(std::move(source)), vars_(std::move(vars)) {}
  std::string name() const override { return "jinja"; }

 protected:
  void render_into(const Conversation& conv, bool add_generation_prompt, RenderedText& out) const override {
    if (conv.messages.empty()) throw InputError("conversation has no messages");
    Value messages = messages_value(conv), tools = tools_value(conv);
    std::vector<std::pair<size_t, size_t>> generation;
    out.text = render(*messages.l, tools, add_generation_prompt, &generation);
    out.trained.clear();
    if (template_.has_generation()) {
      for (auto [b, e] : generation) add_span(out, b, e);
      return;
    }
    for (size_t i = 0; i < conv.messages.size(); ++i)
      if (conv.messages[i].role == "assistant") add_generic_span(*messages.l, tools, add_generation_prompt, i, out);
  }

 private:
  static jinja::Template parse(const std::string& text, const std::string& source) {
    try {
      return jinja::Template(text);
    } catch (const jinja::TemplateError& e) {
      throw input_error(source, e.what());
    }
  }

  std::string render(const jinja::List& messages, const Value& tools, bool add_generation_prompt,
                     std::vector<std::pair<size_t, size_t>>* generation = nullptr) const {
    Value ctx = Value::dict();
    for (const auto& [k, v] : *vars_.extra.d) ctx.set(k, v);
    ctx.set(str("messages"), Value::list(messages));
    ctx.set(str("tools"), tools);
    ctx.set(str("add_generation_prompt"), Value::boolean(add_generation_prompt));
    auto token = [&](const char* name, const std::optional<std::string>& t) {
      if (t) ctx.set(str(name), str(*t));
    };
    token("bos_token", vars_.bos_token);
    token("eos_token", vars_.eos_token);
    token("pad_token", vars_.pad_token);
    try {
      return template_.render(ctx, generation);
    } catch (const jinja::TemplateError& e) {
      throw input_error(source_, e.what());
    }
  }

  static void add_span(RenderedText& out, size_t begin, size_t end) {
    if (end <= begin) return;
    if (!out.trained.empty() && out.trained.back().end >= begin) {
      out.trained.back().end = std::max<uint32_t>(out.trained.back().end, static_cast<uint32_t>(end));
      return;
    }
    out.trained.push_back({static_cast<uint32_t>(begin), static_cast<uint32_t>(end)});
  }

  // The rule of chat_template.h for assistant message i.
  void add_generic_span(const jinja::List& messages, const Value& tools, bool add_generation_prompt, size_t i,
                        RenderedText& out) const {
    const std::string& full = out.text;
    const auto prefix = [&](size_t n) {
      return jinja::List(messages.begin(), messages.begin() + static_cast<ptrdiff_t>(n));
    };
    jinja::List marked = messages;  // message i's content replaced by the sentinel
    Value m = Value::dict(*marked[i].d);
    m.set(str("content"), str(kSentinel));
    marked[i] = m;
    std::string full_marked;
    const auto render_full_marked = [&]() -> const std::string& {
      if (full_marked.empty()) full_marked = render(marked, tools, add_generation_prompt);  // as full is rendered
      return full_marked;
    };
    size_t start;
    try {
      start = common_prefix(full, render(prefix(i), tools, true));
    } catch (const InputError&) {
      if (i > 0) throw;
      // A template that cannot render a conversation without messages: the first turn starts at its content.
      start = common_prefix(full, render_full_marked());
    }
    const std::string turn = render(prefix(i + 1), tools, false);
    size_t end = 0;
    if (common_prefix(full, turn) == turn.size()) {
      end = turn.size();
    } else {
      const size_t content_end = full.size() - common_suffix(full, render_full_marked());
      marked.resize(i + 1);
      const std::string turn_marked = render(marked, tools, false);
      const size_t at = turn_marked.rfind(kSentinel);
      if (at != std::string::npos) {
        std::string_view tail = std::string_view(turn_marked).substr(at + kSentinel.size());
        if (std::string_view(full).substr(content_end, tail.size()) == tail) end = content_end + tail.size();
      }
    }
    if (end <= start)
      throw input_error(source_, "messages[" + std::to_string(i) +
                                     "]: cannot find the assistant turn in the chat template's text (the template "
                                     "renders it differently when later messages follow); mark it with "
                                     "{% generation %} or choose a chat_format");
    add_span(out, start, end);
  }

  jinja::Template template_;
  std::string source_;
  ChatTemplateVariables vars_;
};

}  // namespace

Value messages_value(const Conversation& conv) {
  jinja::List out;
  for (size_t i = 0; i < conv.messages.size(); ++i) out.push_back(message_value(conv.messages[i], i));
  return Value::list(std::move(out));
}

Value tools_value(const Conversation& conv) {
  if (conv.tools_json.empty()) return Value::none();
  jinja::List out;
  for (size_t k = 0; k < conv.tools_json.size(); ++k)
    out.push_back(Value::from_json(conv.tools_json[k], "tools[" + std::to_string(k) + "]"));
  return Value::list(std::move(out));
}

std::unique_ptr<ChatFormat> make_jinja_format(const std::string& template_text, const std::string& source,
                                              ChatTemplateVariables vars) {
  return std::make_unique<JinjaFormat>(template_text, source, std::move(vars));
}

}  // namespace qsft
