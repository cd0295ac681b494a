// The model generation runs: the base weights of model_dir with, optionally, a LoRA adapter (a PEFT adapter
// folder, or a training run folder: its newest checkpoint), either unmerged (a LoRA branch per adapted module, as
// PEFT computes it) or merged into the frozen weights once (W += scaling B A: faster, rounded to the weights'
// dtype). Without an adapter the model has no LoRA branch at all.
#pragma once
#include <memory>
#include <string>

#include "engine/generate/generator.h"

namespace qsft {

// An adapter folder as given (it has adapter_model.safetensors), or a run folder's newest checkpoint.
// InputError when it is neither.
std::string resolve_adapter(const std::string& path);

struct GenerationModelSpec {
  std::string model_dir;
  std::string adapter;  // "" = the base model; else an adapter or run folder (resolve_adapter)
  bool merge = false;   // fold the adapter into the weights
};

std::unique_ptr<Qwen2Model> load_generation_model(Ops& ops, const GenerationModelSpec& spec,
                                                  const GeneratorOptions& o);

// W += scaling B A for every adapted module of `layout` (params: its flat buffer on the host), on the device.
void merge_lora_into(Ops& ops, Qwen2Weights& w, const LoraLayout& layout, const std::vector<float>& params);

}  // namespace qsft
