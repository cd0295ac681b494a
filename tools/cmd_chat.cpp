// qwen-sft chat --model DIR [--adapter DIR] [--system TEXT]: an interactive conversation. Each user line is added to
// the conversation, the whole conversation goes through the chat template with the generation prompt, and the
// answer is printed as its tokens are decoded (then kept as the assistant's turn). The KV cache keeps the
// conversation between turns: only the tokens after what it holds are computed (Generator::converse). /reset starts
// over (keeping the system prompt), /system TEXT sets the system prompt and starts over (both empty the cache),
// /quit or end of input leaves.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "tools/generate_setup.h"

namespace qsft::cli {
namespace {

constexpr int64_t kDefaultContext = 4096;

Conversation fresh(const std::string& system) {
  Conversation c;
  if (!system.empty()) c.messages.push_back(message("system", system));
  return c;
}

int run(const Args& args) {
  Flags f = parse_flags(args,
                        {"model", "adapter", "device", "chat-format", "max-new-tokens", "temperature", "top-k", "top-p",
                         "min-p", "repetition-penalty", "seed", "batch-size", "max-length", "system"},
                        {"greedy", "sample", "merge"});
  GenerateSetup s = GenerateSetup::from_flags(f);
  if (!f.has("batch-size")) s.gen.slots = 1;
  if (s.gen.capacity == 0) s.gen.capacity = kDefaultContext;
  auto model = s.load(f.get("adapter"));
  Generator gen(*s.ops, *model, s.gen);
  const bool tty = isatty(STDIN_FILENO);
  std::string system = f.get("system");
  Conversation conv = fresh(system);
  const uint64_t seed = s.sampling.seed;
  std::fprintf(stderr, "chat on %s; /reset, /system TEXT, /quit\n", s.ops->name().c_str());
  std::string line;
  for (uint64_t turn = 0;; ++turn) {
    if (tty) std::fputs("> ", stdout), std::fflush(stdout);
    if (!std::getline(std::cin, line) || line == "/quit" || line == "/exit") break;
    if (line.empty()) continue;
    if (line == "/reset" || line.rfind("/system", 0) == 0) {
      if (line != "/reset") system = line.size() > 8 ? line.substr(8) : "";
      conv = fresh(system);
      gen.forget();
      std::fprintf(stderr, "(new conversation%s)\n", system.empty() ? "" : ", with the system prompt");
      continue;
    }
    conv.messages.push_back(message("user", line));
    std::vector<int32_t> ids;
    try {
      ids = s.prompts.encode(conv);
      if (int64_t(ids.size()) >= s.gen.capacity)
        throw InputError("the conversation has " + std::to_string(ids.size()) + " tokens, --max-length is " +
                         std::to_string(s.gen.capacity) + ": /reset");
    } catch (const InputError& e) {
      std::fprintf(stderr, "%s\n", e.what());
      conv.messages.pop_back();
      continue;
    }
    s.sampling.seed = seed + turn;  // a fresh random stream per turn, the same for the same seed
    TextStream out(s, stdout);
    gen.converse(ids, s.sampling, [&](size_t, int32_t t) { out.add(t); });
    out.finish();
    std::fputc('\n', stdout);
    conv.messages.push_back(message("assistant", s.prompts.text(out.ids())));
  }
  return 0;
}

const bool registered = register_command(
    {"chat", "--model DIR [--adapter DIR|RUN_DIR [--merge]] [--system TEXT] " QSFT_DECODING_USAGE,
     "talk with the model (streamed answers; /reset, /system TEXT, /quit)", run,
     "  --system TEXT            the system prompt\n" QSFT_GENERATE_OPTIONS_HELP});

}  // namespace
}  // namespace qsft::cli
