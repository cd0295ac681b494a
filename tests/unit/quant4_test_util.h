// A 4-bit Linear for the op tests (tests/unit/ops_nf4_test.cpp, tests/gpu/gpu_ops_nf4_test.cpp): carved in its own
// arena of a backend and quantized from host values, part by part, as the model's loader does.
#pragma once
#include <vector>

#include "engine/arena.h"
#include "engine/model/qwen2_weights.h"

namespace qsft::test {

struct Quant4Linear {
  Quant4Linear(Ops& ops, const std::vector<float>& values, int64_t out, int64_t in, const WeightQuant& q, int parts,
               DType compute) {
    Arena measure;
    carve_linear(measure, out, in, false, compute, q, parts);
    arena = Arena(ops, measure.used());
    W = carve_linear(arena, out, in, false, compute, q, parts);
    for (int p = 0; p < parts; ++p) quantize_linear_part(ops, values.data() + p * (out / parts) * in, W, p);
  }
  Arena arena;
  LinearWeight W;
};

}  // namespace qsft::test
