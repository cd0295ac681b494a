// CUDA launchers of SwiGLU on the fused gate/up output (kernels/swiglu.h is the reference). dtype dt (F32 or
// BF16) for every tensor; math in fp32.
#pragma once
#include <cstdint>

#include "engine/base/tensor.h"

namespace qsft::cuda {

// gate_up [T, 2I] (gate = columns [0, I), up = [I, 2I)), out [T, I] = silu(gate) * up.
void swiglu_fwd(DType dt, const void* gate_up, int64_t T, int64_t I, void* out, void* stream);
// dgate_up [T, 2I] overwritten: d_gate = dout up sig (1 + g (1 - sig)), d_up = dout silu(g). dout [T, I]
void swiglu_bwd(DType dt, const void* dout, const void* gate_up, int64_t T, int64_t I, void* dgate_up, void* stream);

}  // namespace qsft::cuda
