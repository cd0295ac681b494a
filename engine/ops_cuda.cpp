// The CUDA backend's entry points. Without the CUDA build only the fallback below exists.
#include "engine/ops.h"

namespace qsft {

#if !defined(QSFT_HAVE_CUDA)

bool cuda_available() { return false; }

std::unique_ptr<Ops> make_cuda_ops() {
  throw InputError(
      "this qwen-sft was built without the CUDA backend (rebuild with -DQSFT_CUDA=ON on a machine with nvcc)");
}

#endif

}  // namespace qsft
