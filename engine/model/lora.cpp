#include "engine/model/lora.h"

#include <cmath>

#include "engine/base/error.h"
#include "kernels/rng.h"

namespace qsft {

namespace {
constexpr const char* kTargetNames[kNumLoraTargets] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                       "gate_proj", "up_proj", "down_proj"};
}

const char* lora_target_name(LoraTarget t) { return kTargetNames[size_t(t)]; }

float LoraConfig::scaling() const { return use_rslora ? alpha / std::sqrt(float(r)) : alpha / float(r); }

std::vector<std::string> LoraConfig::target_names() const {
  std::vector<std::string> names;
  for (int i = 0; i < kNumLoraTargets; ++i)
    if (targets[size_t(i)]) names.push_back(kTargetNames[i]);
  return names;
}

void LoraConfig::set_targets(const std::vector<std::string>& names, const std::string& where) {
  targets.fill(false);
  for (const std::string& n : names) {
    if (n == "all-linear") {
      targets.fill(true);
      continue;
    }
    bool found = false;
    for (int i = 0; i < kNumLoraTargets; ++i)
      if (n == kTargetNames[i]) targets[size_t(i)] = found = true;
    if (!found)
      throw input_error(where, "unknown LoRA target module \"" + n +
                                   "\" (Qwen2 has q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, "
                                   "or use \"all-linear\")");
  }
  if (names.empty()) throw input_error(where, "target_modules is empty");
}

LoraLayout::LoraLayout(const Qwen2Config& m, const LoraConfig& lora) : lora_(lora) {
  const int64_t H = m.hidden_size, I = m.intermediate_size, D = m.head_dim;
  const int64_t q_out = int64_t(m.num_attention_heads) * D, kv_out = int64_t(m.num_key_value_heads) * D;
  // (in, out) of each target's Linear
  const int64_t shapes[kNumLoraTargets][2] = {{H, q_out}, {H, kv_out}, {H, kv_out}, {q_out, H}, {H, I}, {H, I}, {I, H}};
  for (int l = 0; l < m.num_hidden_layers; ++l)
    for (int i = 0; i < kNumLoraTargets; ++i) {
      if (!lora.targets[size_t(i)]) continue;
      LoraSlot s{l, LoraTarget(i), shapes[i][0], shapes[i][1], 0, 0};
      s.a_offset = params_.add(peft_key(s, 'A'), lora.r, s.in);
      s.b_offset = params_.add(peft_key(s, 'B'), s.out, lora.r);
      slots_.push_back(s);
    }
}

const LoraSlot* LoraLayout::find(int layer, LoraTarget t) const {
  for (const LoraSlot& s : slots_)
    if (s.layer == layer && s.target == t) return &s;
  return nullptr;
}

std::string LoraLayout::peft_key(const LoraSlot& s, char which) {
  const char* parent = s.target <= LoraTarget::o ? "self_attn" : "mlp";
  return "base_model.model.model.layers." + std::to_string(s.layer) + "." + parent + "." + lora_target_name(s.target) +
         ".lora_" + which + ".weight";
}

std::vector<float> LoraLayout::init_params(uint64_t seed) const {
  std::vector<float> p(size_t(num_params()), 0.0f);  // B stays zero
  for (const LoraSlot& s : slots_) {
    const float bound = 1.0f / std::sqrt(float(s.in));
    for (int64_t i = 0; i < lora_.r * s.in; ++i) {
      const int64_t idx = s.a_offset + i;
      p[size_t(idx)] = bound * (2.0f * rng::uniform(seed, uint64_t(idx)) - 1.0f);
    }
  }
  return p;
}

}  // namespace qsft
