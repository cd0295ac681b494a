// qwen-sft init-model --preset NAME --out DIR [--tokenizer DIR] [--seed N]: a random Qwen2 model directory. The
// tiny preset also writes its own tokenizer (tokenizer.json + tokenizer_config.json with the Qwen2.5 chat
// template), so the demo needs no download; real-size presets take the tokenizer of a Qwen2.5 folder with
// --tokenizer (its files are copied in) and say so on stderr when there is none.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "engine/base/json_writer.h"
#include "engine/io/random_model.h"
#include "engine/io/tiny_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tools/cli.h"

namespace qsft::cli {
namespace {

namespace fs = std::filesystem;

// The tokenizer files of a Hugging Face model folder; --tokenizer copies those present.
constexpr const char* kTokenizerFiles[] = {"tokenizer.json",    "tokenizer_config.json", "vocab.json",
                                           "merges.txt",        "chat_template.jinja",   "special_tokens_map.json",
                                           "added_tokens.json", "generation_config.json"};

// Loads the tokenizer of `dir` (so a broken one is refused before any weights are written) and checks that its
// ids fit the model's embedding.
void check_tokenizer(const fs::path& dir, int64_t vocab_size) {
  if (!fs::exists(dir / "tokenizer.json"))
    throw input_error(dir.string(), "no tokenizer.json here (--tokenizer takes a Hugging Face model folder)");
  const Tokenizer tok = Tokenizer::load(dir.string());
  if (tok.vocab_size() > vocab_size)
    throw input_error((dir / "tokenizer.json").string(), "has " + std::to_string(tok.vocab_size()) +
                                                             " tokens, more than the model's vocab_size " +
                                                             std::to_string(vocab_size));
}

void copy_tokenizer(const fs::path& from, const fs::path& out) {
  for (const char* name : kTokenizerFiles) {
    if (!fs::exists(from / name)) continue;
    std::ifstream in(from / name, std::ios::binary);
    std::stringstream bytes;
    if (!(bytes << in.rdbuf())) throw input_error((from / name).string(), "cannot read");
    write_file_atomic(out / name, bytes.str());
  }
}

int run(const Args& args) {
  Flags f = parse_flags(args, {"preset", "out", "seed", "tokenizer"}, {});
  if (!f.has("preset") || !f.has("out") || !f.positional.empty()) throw UsageError("--preset and --out are required");
  const ModelPreset& preset = find_preset(f.get("preset"));
  const fs::path out = f.get("out");
  const std::string seed_text = f.get("seed", "0");
  if (seed_text.empty() || seed_text.find_first_not_of("0123456789") != std::string::npos)
    throw UsageError("--seed: \"" + seed_text + "\" is not a non-negative integer");
  const uint64_t seed = std::stoull(seed_text);
  Qwen2Config cfg = preset.config;
  const bool own_tokenizer = cfg.vocab_size == 0;  // tiny: the model's vocab follows the tokenizer it writes
  if (own_tokenizer && f.has("tokenizer"))
    throw UsageError("--tokenizer: the " + preset.name + " preset writes its own tokenizer");
  if (f.has("tokenizer")) check_tokenizer(f.get("tokenizer"), cfg.vocab_size);
  fs::create_directories(out);
  if (own_tokenizer) {  // padded as Qwen pads its vocabulary
    TinyTokenizer tok = write_tiny_tokenizer(out, cfg.max_position_embeddings);
    cfg.vocab_size = (tok.vocab_size + 63) / 64 * 64;
    cfg.bos_token_id = tok.endoftext_id;
    cfg.eos_token_ids = {tok.im_end_id};
  }
  write_random_model(out, cfg, preset.dtype, seed);
  if (f.has("tokenizer")) copy_tokenizer(f.get("tokenizer"), out);
  std::printf("wrote %s: preset %s (hidden %lld, layers %lld, vocab %lld, %s)%s\n", out.string().c_str(),
              preset.name.c_str(), (long long)cfg.hidden_size, (long long)cfg.num_hidden_layers,
              (long long)cfg.vocab_size, preset.dtype == DType::BF16 ? "bf16" : "fp32",
              f.has("tokenizer") ? (" + the tokenizer of " + f.get("tokenizer")).c_str() : "");
  if (!own_tokenizer && !f.has("tokenizer"))
    std::fprintf(stderr,
                 "qwen-sft init-model: note: %s has weights but no tokenizer; training needs one: pass --tokenizer "
                 "DIR (a Qwen2.5 model folder) or copy its tokenizer.json and tokenizer_config.json in\n",
                 out.string().c_str());
  return 0;
}

const bool registered = register_command(
    {"init-model", "--preset NAME --out DIR [--tokenizer DIR] [--seed N]",
     "a random Qwen2/Qwen3 model (config + weights) with a tokenizer, for demos, tests and benchmarks", run,
     "  --preset NAME    tiny or tiny-qwen3 (each writes its own small tokenizer), or a real size (bf16 weights):\n"
     "                   qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-7b, qwen2.5-14b, qwen3-0.6b, qwen3-8b\n"
     "  --out DIR        the model folder to write\n"
     "  --tokenizer DIR  copy the tokenizer files of a Hugging Face model folder (tokenizer.json, "
     "tokenizer_config.json,\n"
     "                   vocab.json, merges.txt, chat_template.jinja, generation_config.json, ... where present);\n"
     "                   real-size presets only\n"
     "  --seed N         the weights' random seed (default 0); the same preset and seed write the same bytes\n"});

}  // namespace
}  // namespace qsft::cli
