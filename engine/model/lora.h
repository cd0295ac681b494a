// LoRA as PEFT defines it: y = x W^T + b + scaling * (dropout(x) A^T) B^T, A [r, in], B [out, r],
// scaling = alpha / r (rsLoRA: alpha / sqrt(r)). All adapters' parameters live in one flat F32 buffer (one
// optimizer call, one gradient-norm reduction, one ZeRO-1 shard map); LoraLayout says where each A and B sits.
// The adapted modules of a layer that read the same input form a group (q/k/v read rmsnorm1(h), gate/up read
// rmsnorm2(h); o and down are groups of one): their A's are stacked, [n*r, in], so that one GEMM projects the
// shared input for all of them (lora_linear.h).
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

// The groups of targets that read the same input, in layer order; a target's group is fixed by the model.
enum class LoraGroup : uint8_t { qkv, o, gate_up, down };
constexpr int kNumLoraGroups = 4;
constexpr int kMaxLoraGroupSize = 3;  // q, k, v
LoraGroup lora_group(LoraTarget t);
int lora_group_index(LoraTarget t);  // its place among its group's targets: q 0, k 1, v 2, o 0, gate 0, up 1, down 0

struct LoraConfig {
  int r = 8;
  float alpha = 8.0f;  // PEFT's default
  float dropout = 0.0f;
  bool use_rslora = false;
  std::array<bool, kNumLoraTargets> targets{};  // which modules are adapted

  float scaling() const;
  bool adapts(LoraTarget t) const { return targets[size_t(t)]; }
  std::vector<std::string> target_names() const;  // PEFT's target_modules list, in layer order
  int group_size(LoraGroup g) const;               // how many of the group's targets are adapted
  int largest_group() const;                       // the most adapted targets of one group (0: none)
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
  // Where A started before groups were stacked (each module's A then B, modules in target order; B followed A).
  // A's initial values are drawn at these indices, so each PEFT key starts as it did then; checkpoints written in
  // that order are read through it (LoraLayout::from_unstacked).
  int64_t unstacked_a_offset;
};

// The adapted modules of one layer's group: slots()[first, first + n), in target order, their A's stacked at
// a_offset as one [n*r, in] matrix (the members' A in order), their B's after it.
struct LoraStackSlot {
  int layer;
  LoraGroup group;
  int first, n;
  int64_t in;
  int64_t a_offset;
};

class LoraLayout {
 public:
  LoraLayout() = default;
  LoraLayout(const Qwen2Config& model, const LoraConfig& lora);

  const LoraConfig& config() const { return lora_; }
  const std::vector<LoraSlot>& slots() const { return slots_; }
  const LoraSlot* find(int layer, LoraTarget t) const;  // nullptr when the module is not adapted
  const LoraStackSlot* find(int layer, LoraGroup g) const;  // nullptr when none of the group is adapted
  int64_t num_params() const { return params_.num_params(); }
  const ParamLayout& params() const { return params_; }  // every A and B, named by its PEFT key
  // PEFT's state-dict key: base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight
  static std::string peft_key(const LoraSlot& s, char which /* 'A' or 'B' */);

  // PEFT's initialisation: A ~ kaiming_uniform(a=sqrt 5) = U(-1/sqrt(in), 1/sqrt(in)), B = 0. Deterministic in
  // seed (our counter-based generator, not torch's: same distribution, different draws).
  std::vector<float> init_params(uint64_t seed) const;

  // Whether the flat order differs from the unstacked one (some group has two or more adapted modules).
  bool stacks() const;
  // A [num_params()] vector in the unstacked order (checkpoints written before stacking) in this layout's order.
  std::vector<float> from_unstacked(const std::vector<float>& v) const;

 private:
  LoraConfig lora_;
  std::vector<LoraSlot> slots_;
  std::vector<LoraStackSlot> stacks_;
  ParamLayout params_;
};

}  // namespace qsft
