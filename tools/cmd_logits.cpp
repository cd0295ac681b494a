// qwen-sft logits --model DIR [--adapter DIR] [--load-in-4bit nf4|fp4 [--double-quant]] --ids 1,2,3[;4,5] --out FILE:
// the fp32 logits of the CPU reference engine (over a 4-bit base with --load-in-4bit) for one or more sequences (';'
// separates sequences, run packed), written as FILE.safetensors tensor "logits" [T, V]. For checking adapters against
// transformers + PEFT (tests/interop/peft_roundtrip_test.py).
#include <sstream>

#include "data/packed_batch.h"
#include "engine/io/model_config.h"
#include "engine/io/peft_adapter.h"
#include "engine/io/safetensors.h"
#include "engine/model/qwen2.h"
#include "tools/cli.h"

namespace qsft::cli {
namespace {

PackedBatch parse_ids(const std::string& text) {
  PackedBatch b;
  std::stringstream seqs(text);
  for (std::string seq; std::getline(seqs, seq, ';');) {
    std::vector<int32_t> ids;
    std::stringstream items(seq);
    for (std::string item; std::getline(items, item, ',');) {
      try {
        ids.push_back(int32_t(std::stol(item)));
      } catch (const std::exception&) {
        throw InputError("--ids: \"" + item + "\" is not a token id");
      }
    }
    if (ids.empty()) throw InputError("--ids: an empty sequence");
    b.append(ids, std::vector<uint8_t>(ids.size(), 0));
  }
  return b;
}

int run(const Args& args) {
  Flags f = parse_flags(args, {"model", "adapter", "ids", "out", "load-in-4bit"}, {"double-quant"});
  if (!f.has("model") || !f.has("ids") || !f.has("out")) throw UsageError("--model, --ids and --out are required");
  const Qwen2Config cfg = Qwen2Config::load(f.get("model"));
  LoraConfig lora;  // without an adapter: a zero LoRA (B = 0) leaves the base model unchanged
  lora.set_targets({"q_proj"}, "--adapter");
  if (f.has("adapter")) lora = read_peft_config(f.get("adapter"));
  const PackedBatch batch = parse_ids(f.get("ids"));
  auto ops = make_cpu_ops();
  ModelOptions opts;
  opts.max_tokens = batch.num_tokens();
  if (f.has("load-in-4bit")) {
    const std::string t = f.get("load-in-4bit");
    if (t != "nf4" && t != "fp4") throw UsageError("--load-in-4bit: \"" + t + "\" is not nf4 or fp4");
    opts.quant = {t == "nf4" ? WeightFormat::nf4 : WeightFormat::fp4, f.has("double-quant")};
  }
  Qwen2Model model(*ops, cfg, lora, opts);
  model.load_weights(f.get("model"));
  if (f.has("adapter")) model.set_lora_params(read_peft_weights(f.get("adapter"), model.lora_layout()));
  const std::vector<float> logits = model.logits(batch);
  write_safetensors(f.get("out"), {{"logits", DType::F32, {batch.num_tokens(), cfg.vocab_size}, logits.data()}});
  return 0;
}

const bool registered =
    register_command({"logits",
                      "--model DIR [--adapter DIR] [--load-in-4bit nf4|fp4 [--double-quant]] --ids 1,2,3[;4,5] "
                      "--out FILE",
                      "fp32 logits of the CPU reference engine (for checks against transformers + PEFT)", run,
                      "  --model DIR     the model folder\n"
                      "  --adapter DIR   a PEFT LoRA adapter to apply (default: the base model alone)\n"
                      "  --load-in-4bit T  the base's Linear weights quantized as bitsandbytes does (nf4 or fp4)\n"
                      "  --double-quant  with --load-in-4bit: the absmax double-quantized\n"
                      "  --ids LIST      token ids, ',' between ids, ';' between sequences (run as one packed batch)\n"
                      "  --out FILE      safetensors file with one F32 tensor \"logits\" [tokens, vocab]\n"});

}  // namespace
}  // namespace qsft::cli
