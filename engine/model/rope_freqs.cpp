#include "engine/model/rope_freqs.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "kernels/rope.h"

// Each function follows transformers' modeling_rope_utils (v5.24) operation by operation: Python floats are doubles
// here, torch fp32 tensors are floats, and a Python scalar meeting an fp32 tensor is rounded to float first (torch
// computes tensor-scalar ops in the tensor's dtype). `x / t` with a scalar x and a tensor t is t.reciprocal() * x in
// torch (Tensor.__rtruediv__), which rounds twice. Checked bit for bit by tests/unit/rope_scaling_test.cpp.
namespace qsft {
namespace {

using Floats = std::vector<float>;

// theta^(2i/D) in fp32 for i < D/2: torch `theta ** (arange(0, D, 2).float() / D)`.
Floats theta_powers(int64_t D, float theta) {
  Floats p(size_t(D / 2));
  for (int64_t i = 0; i < D / 2; ++i) p[size_t(i)] = std::pow(theta, float(2 * i) / float(D));
  return p;
}

// Linear (position interpolation): inv_freq / factor.
Floats linear_inv_freq(const Qwen2Config& c) {
  Floats f = cpu::rope_default_inv_freq(c.head_dim, c.rope_theta);
  for (float& x : f) x /= float(c.rope_scaling.factor);
  return f;
}

// Dynamic NTK: for seq_len > max_position_embeddings the base grows to
// theta * (factor * seq_len / max_pos - (factor - 1))^(D / (D - 2)); shorter sequences use plain RoPE (the table
// transformers builds at init and resets to). At seq_len > max_pos transformers gets seq_len as an int64 tensor
// (max(position_ids) + 1), so the base is computed in fp32; its pow with a Python-float exponent runs in double.
Floats dynamic_inv_freq(const Qwen2Config& c, int64_t seq_len) {
  const int64_t D = c.head_dim;
  const double factor = c.rope_scaling.factor;
  if (seq_len <= c.max_position_embeddings) {  // Python floats: base * 1.0 ** (D / (D - 2))
    const double grow = factor * double(c.max_position_embeddings) / double(c.max_position_embeddings) - (factor - 1);
    return cpu::rope_default_inv_freq(D, c.rope_theta * std::pow(grow, double(D) / double(D - 2)));
  }
  float grow = float(seq_len) * float(factor);
  grow = grow / float(c.max_position_embeddings);
  grow = grow - float(factor - 1);
  grow = float(std::pow(double(grow), double(D) / double(D - 2)));
  const float base = float(c.rope_theta) * grow;
  Floats f = theta_powers(D, base);
  for (float& x : f) x = 1.0f / x;
  return f;
}

// YaRN's attention factor get_mscale(scale, mscale) = 0.1 * mscale * ln(scale) + 1 (1 for scale <= 1).
double yarn_mscale(double scale, double mscale) { return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

double yarn_attention_factor(const RopeScaling& s) {
  if (s.attention_factor) return *s.attention_factor;
  if (s.mscale.value_or(0) != 0 && s.mscale_all_dim.value_or(0) != 0)  // Python truthiness: 0 counts as absent
    return yarn_mscale(s.factor, *s.mscale) / yarn_mscale(s.factor, *s.mscale_all_dim);
  return yarn_mscale(s.factor, 1);
}

// The dimension (of D) whose wavelength turns `rotations` times over the original context.
double yarn_correction_dim(double rotations, int64_t D, double theta, int64_t original) {
  return (double(D) * std::log(double(original) / (rotations * 2 * std::numbers::pi))) / (2 * std::log(theta));
}

// YaRN (NTK-by-parts): dims below `low` keep their frequency (extrapolation), dims above `high` are divided by
// factor (interpolation), a linear ramp blends the ones between.
Floats yarn_inv_freq(const Qwen2Config& c) {
  const RopeScaling& s = c.rope_scaling;
  const int64_t D = c.head_dim;
  const double beta_fast = s.beta_fast.value_or(0) != 0 ? *s.beta_fast : 32;  // `get("beta_fast") or 32`
  const double beta_slow = s.beta_slow.value_or(0) != 0 ? *s.beta_slow : 1;
  double low = yarn_correction_dim(beta_fast, D, c.rope_theta, s.original_max_position_embeddings);
  double high = yarn_correction_dim(beta_slow, D, c.rope_theta, s.original_max_position_embeddings);
  if (s.truncate.value_or(true)) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, double(D - 1));
  if (low == high) high += 0.001;  // transformers: prevent a singular ramp

  const Floats pos = theta_powers(D, float(c.rope_theta));
  Floats f(pos.size());
  for (size_t i = 0; i < pos.size(); ++i) {
    const float extrapolation = 1.0f / pos[i];
    const float interpolation = 1.0f / (float(s.factor) * pos[i]);
    const float ramp = std::clamp((float(i) - float(low)) / float(high - low), 0.0f, 1.0f);
    const float keep = 1.0f - ramp;  // inv_freq_extrapolation_factor
    const float a = interpolation * (1.0f - keep), b = extrapolation * keep;
    f[i] = a + b;
  }
  return f;
}

// Llama 3.1: wavelengths above original / low_freq_factor are divided by factor, below original /
// high_freq_factor kept, the band between blended by smooth = (original / wavelen - low) / (high - low).
Floats llama3_inv_freq(const Qwen2Config& c) {
  const RopeScaling& s = c.rope_scaling;
  const double original = double(s.original_max_position_embeddings);
  const float low_wavelen = float(original / s.low_freq_factor), high_wavelen = float(original / s.high_freq_factor);
  const float factor = float(s.factor);
  Floats f = cpu::rope_default_inv_freq(c.head_dim, c.rope_theta);
  for (float& x : f) {
    const float wavelen = (1.0f / x) * float(2 * std::numbers::pi);
    const float scaled = wavelen > low_wavelen ? x / factor : x;
    const float smooth =
        ((1.0f / wavelen) * float(original) - float(s.low_freq_factor)) / float(s.high_freq_factor - s.low_freq_factor);
    const float a = ((1.0f - smooth) * scaled) / factor, b = smooth * scaled;
    const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
    x = medium ? a + b : scaled;
  }
  return f;
}

}  // namespace

RopeTable rope_table(const Qwen2Config& cfg, int64_t seq_len) {
  const std::string& type = cfg.rope_scaling.type;
  if (type == "linear") return {linear_inv_freq(cfg), 1.0f};
  if (type == "dynamic") return {dynamic_inv_freq(cfg, seq_len), 1.0f};
  if (type == "yarn") return {yarn_inv_freq(cfg), float(yarn_attention_factor(cfg.rope_scaling))};
  if (type == "llama3") return {llama3_inv_freq(cfg), 1.0f};
  return {cpu::rope_default_inv_freq(cfg.head_dim, cfg.rope_theta), 1.0f};
}

}  // namespace qsft
