#include "engine/generate/generation_model.h"

#include <filesystem>

#include "engine/io/peft_adapter.h"
#include "engine/train/checkpoint.h"

namespace qsft {

namespace fs = std::filesystem;

std::string resolve_adapter(const std::string& path) {
  if (fs::exists(fs::path(path) / "adapter_model.safetensors")) return path;
  if (auto ckpt = latest_checkpoint(path)) return ckpt->string();
  throw input_error(path, "is neither a PEFT adapter folder (adapter_model.safetensors) nor a training run with a "
                          "checkpoint-* folder");
}

// The frozen weight of a LoRA slot's module: q_proj, k_proj and v_proj are row ranges of the fused qkv (n D, nkv D,
// nkv D rows; n D = o_proj's input), gate_proj and up_proj the two halves of the fused gate_up.
static Tensor target_weight(LayerWeights& W, LoraTarget t) {
  const int64_t qo = W.o.in(), kvo = (W.qkv.out() - qo) / 2, I = W.down.in();
  switch (t) {
    case LoraTarget::q: return W.qkv.w.rows(0, qo);
    case LoraTarget::k: return W.qkv.w.rows(qo, qo + kvo);
    case LoraTarget::v: return W.qkv.w.rows(qo + kvo, qo + 2 * kvo);
    case LoraTarget::o: return W.o.w;
    case LoraTarget::gate: return W.gate_up.w.rows(0, I);
    case LoraTarget::up: return W.gate_up.w.rows(I, 2 * I);
    case LoraTarget::down: return W.down.w;
  }
  return {};
}

void merge_lora_into(Ops& ops, Qwen2Weights& w, const LoraLayout& layout, const std::vector<float>& params) {
  const int64_t r = layout.config().r;
  int64_t largest = 0;
  for (const LoraSlot& s : layout.slots()) largest = std::max(largest, r * (s.in + s.out));
  Arena scratch(ops, size_t(largest) * sizeof(float) + 2 * Arena::kAlign);
  Tensor a_buf = scratch.take(DType::F32, {largest});
  for (const LoraSlot& s : layout.slots()) {
    Tensor A = a_buf.rows(0, r * s.in).view({r, s.in}), B = a_buf.rows(r * s.in, r * (s.in + s.out)).view({s.out, r});
    ops.copy_to_device(A.data, params.data() + s.a_offset, size_t(r * s.in) * sizeof(float));
    ops.copy_to_device(B.data, params.data() + s.b_offset, size_t(s.out * r) * sizeof(float));
    const Tensor W = target_weight(w.layers[size_t(s.layer)], s.target);
    ops.gemm(Mat::of(B), false, Mat::of(A), false, Mat::of(W), layout.config().scaling(), 1.0f);
  }
}

std::unique_ptr<Qwen2Model> load_generation_model(Ops& ops, const GenerationModelSpec& spec,
                                                  const GeneratorOptions& o) {
  const Qwen2Config cfg = Qwen2Config::load(spec.model_dir);
  const std::string adapter = spec.adapter.empty() ? "" : resolve_adapter(spec.adapter);
  const LoraConfig lora = adapter.empty() ? LoraConfig{} : read_peft_config(adapter);
  // A LoRA branch only when the adapter stays unmerged; LoraConfig{} adapts nothing.
  auto model = std::make_unique<Qwen2Model>(ops, cfg, spec.merge ? LoraConfig{} : lora,
                                            generation_model_options(o));
  model->load_weights(spec.model_dir);
  if (adapter.empty()) return model;
  const LoraLayout layout(cfg, lora);
  const std::vector<float> params = read_peft_weights(adapter, layout);
  if (spec.merge) {
    merge_lora_into(ops, model->frozen_weights(), layout, params);
  } else {
    model->set_lora_params(params);
  }
  return model;
}

}  // namespace qsft
