// What `qwen-sft generate` and `qwen-sft chat` share: the backend, the decoding options (generation_config.json
// defaults, then the command line), the model with or without its adapter, prompts through the chat template,
// and completion text as it streams.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/generate/generation_model.h"
#include "engine/generate/prompts.h"
#include "tools/cli.h"

namespace qsft::cli {

// The usage of the options both commands take (each command's parse_flags lists them, with its own).
#define QSFT_DECODING_USAGE                                                                                  \
  "[--device auto|cpu|cuda] [--chat-format NAME] [--max-new-tokens N] [--greedy|--sample] [--temperature T] " \
  "[--top-k K] [--top-p P] [--min-p P] [--repetition-penalty R] [--seed S] [--batch-size N] [--max-length N]"
// Their help text (a macro: the commands' help strings are joined with it at compile time).
#define QSFT_GENERATE_OPTIONS_HELP                                                                              \
  "  --model DIR              the base model folder (Hugging Face layout, with its tokenizer)\n"                \
  "  --adapter DIR            a PEFT adapter folder, or a training run folder (its newest checkpoint)\n"        \
  "  --merge                  fold the adapter into the weights once (faster; default: unmerged, as PEFT)\n"    \
  "  --device auto|cpu|cuda   default auto (cuda when a GPU is usable)\n"                                       \
  "  --max-new-tokens N       default: generation_config.json's max_new_tokens, else 256\n"                     \
  "  --greedy | --sample      override generation_config.json's do_sample\n"                                    \
  "  --temperature T  --top-k K  --top-p P  --min-p P  --repetition-penalty R\n"                                \
  "                           default: generation_config.json, else transformers' (1, 50, 1, off, 1)\n"         \
  "  --seed S                 the sampling's random stream (default 0): a fixed seed repeats the tokens\n"      \
  "  --batch-size N           sequences decoded together (KV cache slots; default 8)\n"                         \
  "  --max-length N           tokens per sequence, prompt + completion (the KV cache's length)\n"              \
  "  --chat-format NAME       force a chat format (qwen2.5, deepseek-r1-distill, jinja)\n"

struct GenerateSetup {
  std::string model_dir;
  std::unique_ptr<Ops> ops;
  PromptEncoder prompts;  // the tokenizer and chat template
  SamplingConfig sampling;
  GeneratorOptions gen;
  bool merge = false;

  // --model, --device, --chat-format and the decoding options; gen.capacity from --max-length (0 when absent:
  // the command decides).
  static GenerateSetup from_flags(const Flags& f);
  // The model, with `adapter` ("" = none) unmerged or, with --merge, merged.
  std::unique_ptr<Qwen2Model> load(const std::string& adapter) const;
};

inline Message message(std::string role, std::string content) {
  Message m;
  m.role = std::move(role);
  m.content = std::move(content);
  return m;
}

// Streams a sequence's text as its tokens come: prints the part of the decoded text that is complete (a multi-byte
// character split across tokens waits for its last byte).
class TextStream {
 public:
  TextStream(const GenerateSetup& s, std::FILE* out) : setup_(s), out_(out) {}
  void add(int32_t token);
  void finish();  // prints what is left
  const std::vector<int32_t>& ids() const { return ids_; }

 private:
  const GenerateSetup& setup_;
  std::FILE* out_;
  std::vector<int32_t> ids_;
  size_t printed_ = 0;  // bytes of the decoded text already printed
};

}  // namespace qsft::cli
