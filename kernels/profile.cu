#include <utility>
#include <vector>

#include "kernels/kernel_util_cuda.h"
#include "kernels/profile_cuda.h"

namespace qsft::cuda {

struct FamilyTimer::Impl {
  cudaStream_t stream;
  std::vector<double> totals;                     // [num_slots] ms of collected pairs
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
  void drain(double* ms) {  // reads every recorded pair (in record order) and recycles its events
    for (const Pair& p : done) {
      QSFT_CUDA_CHECK(cudaEventSynchronize(p.end));
      float t = 0;
      QSFT_CUDA_CHECK(cudaEventElapsedTime(&t, p.start, p.end));
      ms[p.slot] += t;
      free.push_back(p.start);
      free.push_back(p.end);
    }
    done.clear();
  }
};

FamilyTimer::FamilyTimer(void* stream, int num_slots) : impl_(std::make_unique<Impl>()) {
  impl_->stream = as_stream(stream);
  impl_->totals.assign(size_t(num_slots), 0.0);
}

FamilyTimer::~FamilyTimer() {
  // No throwing from a destructor: after a sticky CUDA error these calls fail and are ignored.
  for (auto& p : impl_->done) cudaEventDestroy(p.start), cudaEventDestroy(p.end);
  for (auto& o : impl_->open) cudaEventDestroy(o.second);
  for (cudaEvent_t e : impl_->free) cudaEventDestroy(e);
}

void FamilyTimer::begin(int slot) {
  cudaEvent_t e = impl_->take();
  QSFT_CUDA_CHECK(cudaEventRecord(e, impl_->stream));
  impl_->open.push_back({slot, e});
}

void FamilyTimer::end(int slot) {
  if (impl_->open.empty() || impl_->open.back().first != slot) return;  // unmatched (an op threw): dropped
  cudaEvent_t start = impl_->open.back().second;
  impl_->open.pop_back();
  cudaEvent_t e = impl_->take();
  QSFT_CUDA_CHECK(cudaEventRecord(e, impl_->stream));
  impl_->done.push_back({slot, start, e});
  if (impl_->done.size() >= 4096) impl_->drain(impl_->totals.data());  // bounded memory over a long run
}

void FamilyTimer::collect(double* ms) {
  impl_->drain(impl_->totals.data());
  for (size_t i = 0; i < impl_->totals.size(); ++i) ms[i] = impl_->totals[i];
}

}  // namespace qsft::cuda
