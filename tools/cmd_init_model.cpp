// qwen-sft init-model --preset NAME --out DIR [--seed N]: a random Qwen2 model directory. The tiny preset also
// writes its own tokenizer (tokenizer.json + tokenizer_config.json with the Qwen2.5 chat template), so the demo
// needs no download; real-size presets write config + weights only (copy a Qwen2.5 tokenizer beside them).
#include <cstdio>

#include "engine/io/random_model.h"
#include "engine/io/tiny_tokenizer.h"
#include "tools/cli.h"

namespace qsft::cli {
namespace {

int run(const Args& args) {
  Flags f = parse_flags(args, {"preset", "out", "seed"}, {});
  if (!f.has("preset") || !f.has("out") || !f.positional.empty())
    throw InputError("usage: qwen-sft init-model --preset NAME --out DIR [--seed N]");
  const ModelPreset& preset = find_preset(f.get("preset"));
  const std::filesystem::path out = f.get("out");
  const uint64_t seed = std::stoull(f.get("seed", "0"));
  Qwen2Config cfg = preset.config;
  std::filesystem::create_directories(out);
  if (cfg.vocab_size == 0) {  // the model's vocab follows its own tokenizer, padded as Qwen pads it
    TinyTokenizer tok = write_tiny_tokenizer(out, cfg.max_position_embeddings);
    cfg.vocab_size = (tok.vocab_size + 63) / 64 * 64;
    cfg.bos_token_id = tok.endoftext_id;
    cfg.eos_token_ids = {tok.im_end_id};
  }
  write_random_model(out, cfg, preset.dtype, seed);
  std::printf("wrote %s: preset %s (hidden %lld, layers %lld, vocab %lld, %s)\n", out.string().c_str(),
              preset.name.c_str(), (long long)cfg.hidden_size, (long long)cfg.num_hidden_layers,
              (long long)cfg.vocab_size, preset.dtype == DType::BF16 ? "bf16" : "fp32");
  return 0;
}

const bool registered = register_command(
    {"init-model", "--preset tiny|tiny-qwen3|qwen2.5-0.5b|qwen2.5-1.5b|qwen2.5-7b|qwen3-0.6b|qwen3-8b --out DIR [--seed N]: a random model", run});

}  // namespace
}  // namespace qsft::cli
