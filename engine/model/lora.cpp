#include "engine/model/lora.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/base/error.h"
#include "kernels/rng.h"

namespace qsft {

namespace {
constexpr const char* kTargetNames[kNumLoraTargets] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                       "gate_proj", "up_proj", "down_proj"};
}

const char* lora_target_name(LoraTarget t) { return kTargetNames[size_t(t)]; }

LoraGroup lora_group(LoraTarget t) {
  switch (t) {
    case LoraTarget::q:
    case LoraTarget::k:
    case LoraTarget::v: return LoraGroup::qkv;
    case LoraTarget::o: return LoraGroup::o;
    case LoraTarget::gate:
    case LoraTarget::up: return LoraGroup::gate_up;
    case LoraTarget::down: return LoraGroup::down;
  }
  return LoraGroup::down;
}

float LoraConfig::scaling() const { return use_rslora ? alpha / std::sqrt(float(r)) : alpha / float(r); }

std::vector<std::string> LoraConfig::target_names() const {
  std::vector<std::string> names;
  for (int i = 0; i < kNumLoraTargets; ++i)
    if (targets[size_t(i)]) names.push_back(kTargetNames[i]);
  return names;
}

int lora_group_index(LoraTarget t) {
  int first = int(t);
  while (first > 0 && lora_group(LoraTarget(first - 1)) == lora_group(t)) --first;
  return int(t) - first;
}

int LoraConfig::group_size(LoraGroup g) const {
  int n = 0;
  for (int i = 0; i < kNumLoraTargets; ++i) n += targets[size_t(i)] && lora_group(LoraTarget(i)) == g;
  return n;
}

int LoraConfig::largest_group() const {
  int n = 0;
  for (int g = 0; g < kNumLoraGroups; ++g) n = std::max(n, group_size(LoraGroup(g)));
  return n;
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
  const int64_t H = m.hidden_size, I = m.intermediate_size, D = m.head_dim, r = lora.r;
  const int64_t q_out = int64_t(m.num_attention_heads) * D, kv_out = int64_t(m.num_key_value_heads) * D;
  // (in, out) of each target's Linear
  const int64_t shapes[kNumLoraTargets][2] = {{H, q_out}, {H, kv_out}, {H, kv_out}, {q_out, H}, {H, I}, {H, I}, {I, H}};
  int64_t unstacked = 0;  // the offset of the next A in the unstacked order (each module's A, B in target order)
  // Per layer and group (groups are runs of consecutive targets, so target order is kept): the adapted members'
  // A's, then their B's.
  for (int l = 0; l < m.num_hidden_layers; ++l)
    for (int g = 0; g < kNumLoraGroups; ++g) {
      LoraStackSlot st{l, LoraGroup(g), int(slots_.size()), 0, 0, params_.num_params()};
      for (int i = 0; i < kNumLoraTargets; ++i) {
        if (!lora.targets[size_t(i)] || lora_group(LoraTarget(i)) != st.group) continue;
        LoraSlot s{l, LoraTarget(i), shapes[i][0], shapes[i][1], 0, 0, unstacked};
        unstacked += r * (s.in + s.out);
        s.a_offset = params_.add(peft_key(s, 'A'), r, s.in);
        slots_.push_back(s);
        st.in = s.in;
        ++st.n;
      }
      for (size_t j = size_t(st.first); j < slots_.size(); ++j)
        slots_[j].b_offset = params_.add(peft_key(slots_[j], 'B'), slots_[j].out, r);
      if (st.n) stacks_.push_back(st);
    }
}

const LoraSlot* LoraLayout::find(int layer, LoraTarget t) const {
  for (const LoraSlot& s : slots_)
    if (s.layer == layer && s.target == t) return &s;
  return nullptr;
}

const LoraStackSlot* LoraLayout::find(int layer, LoraGroup g) const {
  for (const LoraStackSlot& s : stacks_)
    if (s.layer == layer && s.group == g) return &s;
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
    for (int64_t i = 0; i < lora_.r * s.in; ++i)  // drawn at the unstacked index: the same values per PEFT key
      p[size_t(s.a_offset + i)] = bound * (2.0f * rng::uniform(seed, uint64_t(s.unstacked_a_offset + i)) - 1.0f);
  }
  return p;
}

bool LoraLayout::stacks() const {
  return std::any_of(stacks_.begin(), stacks_.end(), [](const LoraStackSlot& s) { return s.n > 1; });
}

std::vector<float> LoraLayout::from_unstacked(const std::vector<float>& v) const {
  std::vector<float> out(v.size());
  const int64_t r = lora_.r;
  for (const LoraSlot& s : slots_) {
    const float* a = v.data() + s.unstacked_a_offset;  // then B right after it
    std::memcpy(out.data() + s.a_offset, a, size_t(r * s.in) * sizeof(float));
    std::memcpy(out.data() + s.b_offset, a + r * s.in, size_t(s.out * r) * sizeof(float));
  }
  return out;
}

}  // namespace qsft
