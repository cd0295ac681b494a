// QSFT_PROFILE=1: where a run's device time goes, by op family and, for the GEMM-like ops, by shape
// (Ops::profile_report). The backend times spans of ops per slot (the CPU with a host clock, the GPU with CUDA
// event pairs); OpProfile holds what the spans mean: slots 0 .. kNumOpFamilies-1 are the families (OpFamily's
// values), the later ones each GEMM shape in the order the run first meets it.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace qsft {

// The op families a step's time is split into.
enum class OpFamily : uint8_t {
  linear,
  gemm,
  attention,
  rope,
  norm,
  swiglu,
  embedding,
  lm_head_ce,
  elementwise,
  dropout,  // LoRA dropout: dropout and dropout_add, apart from the other elementwise ops
  optimizer,
  copy
};
constexpr int kNumOpFamilies = 12;
const char* op_family_name(OpFamily f);

// One GEMM-like op's work, for its shape's row of the report: C [M, N] = op(A) [M, K] op(B) [K, N], 2 M N K FLOPs,
// and the bytes it must move at least (each operand read once, C written once and read too when accumulated).
struct GemmWork {
  const char* op;  // what the op is, with its transposes and accumulation: "gemm NT +=", "linear_dgrad", ...
                   // (a string that outlives the profile: it is kept by pointer)
  int64_t M, N, K;
  double bytes;
};

class OpProfile {
 public:
  OpProfile() : calls_(kNumOpFamilies, 0) {}
  // The slot of a family's span (counting the call).
  int family_slot(OpFamily f);
  // The slot of w's shape (op and M, N, K), added when new (counting the call, its FLOPs and bytes). A dimension
  // equal to the tokens of the current micro-batch (set_tokens) counts as "T", so that one shape of a weight is one
  // row whatever the batch's token count.
  int shape_slot(const GemmWork& w);
  // The tokens T of the micro-batch the next ops compute on (0: none).
  void set_tokens(int64_t T);
  // A new window from these totals (ms per slot, as the backend collected them): the report counts from here.
  void reset(const std::vector<double>& ms);
  // The family table, then the GEMM shapes that took the longest, over the window to the totals `ms`.
  std::string report(const std::vector<double>& ms) const;

 private:
  static constexpr int64_t kTokens = -1;  // a shape's dimension that is the micro-batch's T
  struct Shape {
    const char* op;
    int64_t dims[3];  // M, N, K, or kTokens
    int slot;
    double flops = 0, bytes = 0;  // over the window's calls
  };
  std::string families(const std::vector<double>& ms, double* total) const;
  std::string shapes(const std::vector<double>& ms, double total) const;
  double window_ms(const std::vector<double>& ms, int slot) const;

  std::vector<int64_t> calls_;                        // per slot, since the window began
  std::vector<Shape> shapes_;                         // slot kNumOpFamilies + i
  std::unordered_map<std::string, int> shape_index_;  // op and dims -> index into shapes_
  std::vector<double> baseline_;                      // ms per slot when the window began
  int64_t tokens_ = 0;                                // set_tokens'
  double tokens_sum_ = 0, tokens_batches_ = 0;        // over the window's set_tokens, for T's mean
};

}  // namespace qsft
