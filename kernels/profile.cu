#include <utility>
#include <vector>

#include "kernels/kernel_util_cuda.h"
#include "kernels/profile_cuda.h"

namespace qsft::cuda {

struct SpanTimer::Impl {
  cudaStream_t stream;
  std::vector<double> totals;                     // ms of collected pairs, per slot (grown as slots appear)
  std::vector<cudaEvent_t> free;                  // recycled events
  std::vector<std::pair<int, cudaEvent_t>> open;  // begun, not ended: (slot, start)
  struct Pair {
    int slot;
    cudaEvent_t start, end;
  };
  std::vector<Pair> done;  // recorded, not yet read

  cudaEvent_t take() {
    if (free.empty()) {
      cudaEvent_t e;
      QSFT_CUDA_CHECK(cudaEventCreate(&e));
      return e;
    }
    cudaEvent_t e = free.back();
    free.pop_back();
    return e;
  }
  void drain() {  // reads every recorded pair (in record order) and recycles its events
    for (const Pair& p : done) {
      QSFT_CUDA_CHECK(cudaEventSynchronize(p.end));
      float t = 0;
      QSFT_CUDA_CHECK(cudaEventElapsedTime(&t, p.start, p.end));
      if (size_t(p.slot) >= totals.size()) totals.resize(size_t(p.slot) + 1, 0.0);
      totals[size_t(p.slot)] += t;
      free.push_back(p.start);
      free.push_back(p.end);
    }
    done.clear();
  }
};

SpanTimer::SpanTimer(void* stream) : impl_(std::make_unique<Impl>()) { impl_->stream = as_stream(stream); }

SpanTimer::~SpanTimer() {
  // No throwing from a destructor: after a sticky CUDA error these calls fail and are ignored.
  for (auto& p : impl_->done) cudaEventDestroy(p.start), cudaEventDestroy(p.end);
  for (auto& o : impl_->open) cudaEventDestroy(o.second);
  for (cudaEvent_t e : impl_->free) cudaEventDestroy(e);
}

void SpanTimer::begin(int slot) {
  cudaEvent_t e = impl_->take();
  QSFT_CUDA_CHECK(cudaEventRecord(e, impl_->stream));
  impl_->open.push_back({slot, e});
}

void SpanTimer::end(int slot) {
  if (impl_->open.empty() || impl_->open.back().first != slot) return;  // unmatched (an op threw): dropped
  cudaEvent_t start = impl_->open.back().second;
  impl_->open.pop_back();
  cudaEvent_t e = impl_->take();
  QSFT_CUDA_CHECK(cudaEventRecord(e, impl_->stream));
  impl_->done.push_back({slot, start, e});
  if (impl_->done.size() >= 4096) impl_->drain();  // bounded memory over a long run
}

std::vector<double> SpanTimer::collect() {
  impl_->drain();
  return impl_->totals;
}

}  // namespace qsft::cuda
