// SwiGLU on the fused gate/up projection: out = silu(gate) * up, silu(g) = g / (1 + exp(-g)).
#pragma once
#include <cstdint>

namespace qsft::cpu {

// gate_up [T, 2I] (gate = columns [0, I), up = [I, 2I)), out [T, I].
void swiglu_fwd(const float* gate_up, int64_t T, int64_t I, float* out);

// dgate_up [T, 2I] overwritten: with sig = sigmoid(g),
//   d_gate = dout * up * sig * (1 + g * (1 - sig)),   d_up = dout * silu(g).   dout [T, I]
void swiglu_bwd(const float* dout, const float* gate_up, int64_t T, int64_t I, float* dgate_up);

}  // namespace qsft::cpu
