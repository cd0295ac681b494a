// LoRA as PEFT defines it: y = x W^T + b + scaling * (dropout(x) A^T) B^T, A [r, in], B [out, r],
// scaling = alpha / r (rsLoRA: alpha / sqrt(r)). All adapters' parameters live in one flat F32 buffer (one
// optimizer call, one gradient-norm reduction, one ZeRO-1 shard map); LoraLayout says where each A and B sits.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/io/model_config.h"
#include "engine/model/params.h"

namespace qsft {

// The seven Linear layers of a Qwen2 decoder layer that LoRA may adapt ("all-linear" = all of them).
enum class LoraTarget : uint8_t { q, k, v, o, gate, up, down };
constexpr int kNumLoraTargets = 7;
const char* lora_target_name(LoraTarget t);  // "q_proj", ..., "down_proj"

struct LoraConfig {
  int r = 8;
  float alpha = 8.0f;  // PEFT's default
  float dropout = 0.0f;
  bool use_rslora = false;
  std::array<bool, kNumLoraTargets> targets{};  // which modules are adapted

  float scaling() const;
  bool adapts(LoraTarget t) const { return targets[size_t(t)]; }
  std::vector<std::string> target_names() const;  // PEFT's target_modules list, in layer order
  // "all-linear" or module names ("q_proj", ...); an unknown name is an InputError naming it and `where`.
  void set_targets(const std::vector<std::string>& names, const std::string& where);
};

// One adapted Linear: its shapes and where its A [r, in] and B [out, r] start in the flat buffer (in floats).
// A and B are also segments of the layout's ParamLayout, named by their PEFT keys.
struct LoraSlot {
  int layer;
  LoraTarget target;
  int64_t in, out;
  int64_t a_offset, b_offset;
};

class LoraLayout {
 public:
  LoraLayout() = default;
  LoraLayout(const Qwen2Config& model, const LoraConfig& lora);

  const LoraConfig& config() const { return lora_; }
  const std::vector<LoraSlot>& slots() const { return slots_; }
  const LoraSlot* find(int layer, LoraTarget t) const;  // nullptr when the module is not adapted
  int64_t num_params() const { return params_.num_params(); }
  const ParamLayout& params() const { return params_; }  // every A and B, named by its PEFT key
  // PEFT's state-dict key: base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight
  static std::string peft_key(const LoraSlot& s, char which /* 'A' or 'B' */);

  // PEFT's initialisation: A ~ kaiming_uniform(a=sqrt 5) = U(-1/sqrt(in), 1/sqrt(in)), B = 0. Deterministic in
  // seed (our counter-based generator, not torch's: same distribution, different draws).
  std::vector<float> init_params(uint64_t seed) const;

 private:
  LoraConfig lora_;
  std::vector<LoraSlot> slots_;
  ParamLayout params_;
};

}  // namespace qsft
