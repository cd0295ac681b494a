// qwen-sft generate --model DIR [--adapter DIR] [--compare] --prompts FILE [--out FILE]: completions of a JSONL file
// of prompts (each line a prompt string, a list of messages, or {"messages": [...]}), through the model's chat
// template with the generation prompt, decoded in batches with a KV cache (engine/generate/). One JSON line per
// prompt: {"index", "prompt", "completion", "finish_reason", "tokens", "ids"}; with --compare, the base model's and the
// adapter's answers side by side: {"index", "prompt", "base": {...}, "adapter": {...}}.
#include <chrono>
#include <cstdio>

#include "engine/base/json_writer.h"
#include "tools/generate_setup.h"

namespace qsft::cli {
namespace {

struct Answers {
  std::vector<Completion> completions;
  double seconds = 0;
};

Answers answer(const GenerateSetup& s, const std::string& adapter, const std::vector<std::vector<int32_t>>& prompts) {
  auto model = s.load(adapter);
  Generator gen(*s.ops, *model, s.gen);
  const ModelMemory m = model->allocated();
  std::fprintf(stderr,
               "%s: memory %.1f MiB (weights %.1f, activations %.1f, KV cache and step buffers %.1f); "
               "embedding in host memory %.1f MiB\n",
               adapter.empty() ? "base" : adapter.c_str(),
               double(m.weights + m.lora + m.activations + gen.bytes()) / 1048576.0, double(m.weights) / 1048576.0,
               double(m.activations) / 1048576.0, double(gen.bytes()) / 1048576.0, double(m.host_weights) / 1048576.0);
  const auto t0 = std::chrono::steady_clock::now();
  Answers a{gen.generate(prompts, s.sampling)};
  s.ops->synchronize();
  a.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int64_t tokens = 0;
  for (const Completion& c : a.completions) tokens += int64_t(c.tokens.size());
  std::fprintf(stderr, "%s: %lld tokens for %zu prompts in %.2f s (%.1f tokens/s, %s)\n",
               adapter.empty() ? "base" : adapter.c_str(), (long long)tokens, prompts.size(), a.seconds,
               double(tokens) / a.seconds, s.ops->name().c_str());
  return a;
}

// completion, finish_reason ("stop": an eos token; "length": max_new_tokens or --max-length), tokens (how many),
// ids (the generated token ids, the stop token included).
Json& add_completion(Json& j, const GenerateSetup& s, const Completion& c) {
  j.set("completion", s.prompts.text(c.tokens));
  j.set("finish_reason", c.stopped ? "stop" : "length");
  j.set("tokens", int64_t(c.tokens.size()));
  Json ids = Json::array();
  for (int32_t id : c.tokens) ids.push(id);
  return j.set("ids", std::move(ids));
}

std::string render_jsonl(const GenerateSetup& s, const std::vector<std::vector<int32_t>>& prompts, const Answers* base,
                         const Answers* tuned) {
  std::string out;
  for (size_t i = 0; i < prompts.size(); ++i) {
    Json line = Json::object();
    line.set("index", int64_t(i));
    line.set("prompt", s.prompts.tokenizer().decode(prompts[i], false));
    if (base && tuned) {
      Json b = Json::object(), a = Json::object();
      line.set("base", add_completion(b, s, base->completions[i]));
      line.set("adapter", add_completion(a, s, tuned->completions[i]));
    } else {
      add_completion(line, s, (base ? base : tuned)->completions[i]);
    }
    out += line.dump() + "\n";
  }
  return out;
}

// The terminal view: each prompt, then the answer(s) under it.
void print_answers(const GenerateSetup& s, const std::vector<std::vector<int32_t>>& prompts, const Answers* base,
                   const Answers* tuned) {
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::printf("=== prompt %zu\n%s\n", i + 1, s.prompts.tokenizer().decode(prompts[i], true).c_str());
    if (base) std::printf("--- base\n%s\n", s.prompts.text(base->completions[i].tokens).c_str());
    if (tuned) std::printf("--- adapter\n%s\n", s.prompts.text(tuned->completions[i].tokens).c_str());
  }
}

int run(const Args& args) {
  Flags f = parse_flags(args,
                        {"model", "adapter", "device", "chat-format", "max-new-tokens", "temperature", "top-k", "top-p",
                         "min-p", "repetition-penalty", "seed", "batch-size", "max-length", "prompts", "out"},
                        {"greedy", "sample", "merge", "compare", "ignore-eos"});
  if (!f.has("prompts")) throw UsageError("--prompts is required");
  const bool compare = f.has("compare");
  if (compare && !f.has("adapter")) throw UsageError("--compare needs --adapter");
  GenerateSetup s = GenerateSetup::from_flags(f);
  const std::vector<std::vector<int32_t>> prompts = read_prompts(f.get("prompts"), s.prompts);
  if (s.gen.capacity == 0) {  // the longest prompt and its completion
    size_t longest = 0;
    for (const auto& p : prompts) longest = std::max(longest, p.size());
    s.gen.capacity = int64_t(longest) + s.sampling.max_new_tokens;
  }
  Answers base, tuned;
  try {
    if (compare || !f.has("adapter")) base = answer(s, "", prompts);
    if (f.has("adapter")) tuned = answer(s, f.get("adapter"), prompts);
  } catch (const InputError& e) {  // a prompt longer than --max-length: name the file it is in
    const std::string what = e.what();
    if (what.rfind("prompt ", 0) == 0) throw input_error(f.get("prompts"), what);
    throw;
  }
  const Answers* b = compare || !f.has("adapter") ? &base : nullptr;
  const Answers* t = f.has("adapter") ? &tuned : nullptr;
  const std::string jsonl = render_jsonl(s, prompts, b, t);
  if (!f.has("out")) {
    std::fwrite(jsonl.data(), 1, jsonl.size(), stdout);
    return 0;
  }
  write_file_atomic(f.get("out"), jsonl);
  print_answers(s, prompts, b, t);
  std::fprintf(stderr, "wrote %zu completions to %s\n", prompts.size(), f.get("out").c_str());
  return 0;
}

const bool registered = register_command(
    {"generate",
     "--model DIR [--adapter DIR|RUN_DIR [--compare] [--merge]] --prompts FILE [--out FILE] "
     "[--ignore-eos] " QSFT_DECODING_USAGE,
     "completions of a JSONL file of prompts (KV cache, batched; base and adapter side by side with --compare)", run,
     "  --prompts FILE           JSONL: per line a prompt string, a list of messages, {\"messages\": [...]} or\n"
     "                           {\"prompt\": \"...\"}; the chat template is applied with the generation prompt\n"
     "  --out FILE               write the JSONL there (atomically) and show the answers; default: JSONL to stdout\n"
     "  --compare                the base model's and the adapter's answers side by side\n"
     "  --ignore-eos             generate max-new-tokens tokens whatever comes "
     "(benchmarks)\n" QSFT_GENERATE_OPTIONS_HELP});

}  // namespace
}  // namespace qsft::cli
