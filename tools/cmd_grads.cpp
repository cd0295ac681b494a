// qwen-sft grads --model DIR --adapter DIR --batch FILE --out FILE [--device cpu|cuda]: one forward/backward of a
// packed batch with the adapter's LoRA weights, no dropout, no optimizer step. Writes FILE (safetensors): "loss"
// F32 [1] (mean cross-entropy over the trained targets) and every LoRA gradient under the adapter's PEFT key
// (d loss / d A [r, in], d loss / d B [out, r]). For checking our backends against transformers + PEFT
// (tests/interop/hf_parity_test.py).
// The batch FILE (safetensors) holds I32 tensors "ids" [T], "targets" [T] (the next token to predict at t, or
// -100) and "cu_seqlens" [S+1] (sequence offsets; positions restart at 0 in each sequence).
#include <cstring>

#include "data/packed_batch.h"
#include "engine/io/model_config.h"
#include "engine/io/peft_adapter.h"
#include "engine/io/safetensors.h"
#include "engine/model/qwen2.h"
#include "tools/cli.h"

namespace qsft::cli {
namespace {

std::vector<int32_t> read_i32(const SafetensorsFile& f, const std::string& name) {
  const TensorInfo* t = f.find(name);
  if (!t) throw InputError(f.path() + ": missing tensor " + name + " (I32)");
  if (t->dtype != DType::I32 || t->shape.size() != 1)
    throw InputError(f.path() + ": tensor " + name + ": expected a 1-D I32 tensor, got " + dtype_name(t->dtype) + " " +
                     t->shape_str());
  std::vector<int32_t> v(size_t(t->numel()));
  std::memcpy(v.data(), t->data, v.size() * sizeof(int32_t));
  return v;
}

PackedBatch read_batch(const std::string& path, int64_t vocab) {
  const SafetensorsFile f = SafetensorsFile::open(path);
  const std::vector<int32_t> ids = read_i32(f, "ids"), targets = read_i32(f, "targets");
  const std::vector<int32_t> cu = read_i32(f, "cu_seqlens");
  if (targets.size() != ids.size())
    throw InputError(path + ": targets has " + std::to_string(targets.size()) + " elements, ids " +
                     std::to_string(ids.size()));
  for (size_t t = 0; t < targets.size(); ++t)
    if (targets[t] != kIgnoreTarget && (targets[t] < 0 || targets[t] >= vocab))
      throw InputError(path + ": targets[" + std::to_string(t) + "] is " + std::to_string(targets[t]) +
                       ", neither -100 nor a token of the model's vocabulary [0, " + std::to_string(vocab) + ")");
  if (cu.size() < 2 || cu.front() != 0 || size_t(cu.back()) != ids.size())
    throw InputError(path + ": cu_seqlens must start at 0 and end at the token count " + std::to_string(ids.size()));
  PackedBatch b;
  for (size_t s = 0; s + 1 < cu.size(); ++s) {
    if (cu[s + 1] <= cu[s]) throw InputError(path + ": cu_seqlens[" + std::to_string(s + 1) + "] is not increasing");
    const auto span = [&](const std::vector<int32_t>& v) {
      return std::span<const int32_t>(v.data() + cu[s], size_t(cu[s + 1] - cu[s]));
    };
    b.append_with_targets(span(ids), span(targets));
  }
  if (b.num_targets() == 0) throw InputError(path + ": no trained target (every target is -100)");
  return b;
}

std::unique_ptr<Ops> make_ops(const std::string& device) {
  if (device == "cpu") return make_cpu_ops();
  if (device == "cuda") return make_cuda_ops();
  throw InputError("--device: \"" + device + "\" is not cpu or cuda");
}

int run(const Args& args) {
  Flags f = parse_flags(args, {"model", "adapter", "batch", "out", "device"}, {});
  for (const char* required : {"model", "adapter", "batch", "out"})
    if (!f.has(required))
      throw InputError("usage: qwen-sft grads --model DIR --adapter DIR --batch FILE --out FILE [--device cpu|cuda]");
  const Qwen2Config cfg = Qwen2Config::load(f.get("model"));
  LoraConfig lora = read_peft_config(f.get("adapter"));
  lora.dropout = 0.0f;  // the reference runs in eval mode: gradients without dropout
  const PackedBatch batch = read_batch(f.get("batch"), cfg.vocab_size);
  auto ops = make_ops(f.get("device", "cpu"));
  ModelOptions opts;
  opts.max_tokens = batch.num_tokens();
  Qwen2Model model(*ops, cfg, lora, opts);
  model.load_weights(f.get("model"));
  model.set_lora_params(read_peft_weights(f.get("adapter"), model.lora_layout()));
  model.zero_grads();
  const LossStats stats = model.forward_backward(batch, 1.0f / float(batch.num_targets()), 0);
  const float loss = float(stats.loss_sum / double(stats.targets));
  const std::vector<float> grads = model.lora_grads();

  const LoraLayout& layout = model.lora_layout();
  const int64_t r = layout.config().r;
  std::vector<SafetensorsEntry> entries{{"loss", DType::F32, {1}, &loss}};
  for (const LoraSlot& s : layout.slots()) {
    entries.push_back({LoraLayout::peft_key(s, 'A'), DType::F32, {r, s.in}, grads.data() + s.a_offset});
    entries.push_back({LoraLayout::peft_key(s, 'B'), DType::F32, {s.out, r}, grads.data() + s.b_offset});
  }
  write_safetensors(f.get("out"), entries, {{"device", ops->name()}, {"targets", std::to_string(stats.targets)}});
  std::printf("grads: %s backend, %lld tokens, %lld targets, loss %.6f -> %s\n", ops->name().c_str(),
              (long long)batch.num_tokens(), (long long)stats.targets, double(loss), f.get("out").c_str());
  return 0;
}

const bool registered = register_command(
    {"grads", "--model DIR --adapter DIR --batch FILE --out FILE [--device cpu|cuda]",
     "one micro-batch's loss and every LoRA gradient, by PEFT key, to a safetensors file (parity checks)", run,
     "  --model DIR     the model folder\n"
     "  --adapter DIR   the PEFT LoRA adapter whose gradients are taken\n"
     "  --batch FILE    the packed batch: safetensors with ids, targets and cu_seqlens (I32)\n"
     "  --out FILE      where the loss and the gradients are written\n"
     "  --device D      cpu (the fp32 reference, default) or cuda\n"});

}  // namespace
}  // namespace qsft::cli
