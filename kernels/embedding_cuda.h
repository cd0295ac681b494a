// CUDA launchers of the embedding ops (kernels/embedding.h is the reference). Streams are void* cudaStream_t.
#pragma once
#include <cstdint>

#include "engine/base/tensor.h"

namespace qsft::cuda {

// out[t, :] = table[ids[t], :] for t < T. table [V, H], out [T, H] of dtype dt; ids I32 [T] on the device.
// An id outside [0, V) (the caller checks on the host) gives a NaN row rather than a wild read.
// Also the row gather of the fused cross-entropy (ids = the trained token indices).
void embedding_fwd(DType dt, const int32_t* ids, const void* table, int64_t T, int64_t V, int64_t H, void* out,
                   void* stream);

// NEFTune: x[i] += scale * (2 u(seed, i) - 1), u = rng::uniform16 (the CPU op's noise, bit for bit, before rounding).
void neftune_noise(DType dt, void* x, int64_t n, float scale, uint64_t seed, void* stream);

}  // namespace qsft::cuda
