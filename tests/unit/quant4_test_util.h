// A 4-bit Linear for the op tests (tests/unit/ops_nf4_test.cpp, tests/gpu/gpu_ops_nf4_test.cpp): carved in its own
// arena of a backend and quantized from host values, part by part, as the model's loader does.
#pragma once
#include <vector>

#include "engine/arena.h"
#include "engine/model/qwen2_weights.h"

namespace qsft::test {

struct Quant4Linear {
  // Parts of part_rows[p] rows each (the fused q/k/v: unequal), values [sum(part_rows), in].
  Quant4Linear(Ops& ops, const std::vector<float>& values, const std::vector<int64_t>& part_rows, int64_t in,
               const WeightQuant& q, DType compute) {
    Arena measure;
    carve_linear(measure, part_rows, in, false, compute, q);
    arena = Arena(ops, measure.used());
    W = carve_linear(arena, part_rows, in, false, compute, q);
    for (size_t p = 0; p < part_rows.size(); ++p)
      quantize_linear_part(ops, values.data() + W.part_row0(int(p)) * in, W, int(p));
  }
  // `parts` equal parts of a Linear [out, in].
  Quant4Linear(Ops& ops, const std::vector<float>& values, int64_t out, int64_t in, const WeightQuant& q, int parts,
               DType compute)
      : Quant4Linear(ops, values, std::vector<int64_t>(size_t(parts), out / parts), in, q, compute) {}
  Arena arena;
  LinearWeight W;
};

}  // namespace qsft::test
