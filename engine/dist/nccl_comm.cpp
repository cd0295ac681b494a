// The NCCL Comm (CUDA backend): collectives enqueued on the Ops stream, so they order with the kernels around them
// without host waits. The unique id goes from rank 0 to the others through MPI under mpirun (when built with it),
// else through the TCP rendezvous (engine/dist/rendezvous.h). Shards may differ in size by one element, which
// ncclReduceScatter / ncclAllGather do not allow: a reduce-scatter is one ncclReduce per owner and an all-gather
// one ncclBroadcast per owner, each group fused by NCCL. The communicator is non-blocking, and the host waits
// (all_reduce_host, barrier) poll the stream against the deadline: a peer that died or hangs ends the job with a
// message and ncclCommAbort, instead of a hang.
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "engine/base/error.h"
#include "engine/dist/comm_backends.h"
#include "engine/dist/rendezvous.h"
#include "engine/ops.h"

namespace qsft {

namespace {

// NCCL is loaded at run time (dlopen of libnccl.so.2, 200 MB, from the CUDA toolkit's folder or the loader's path):
// the binaries start on machines without it, and a world of one never needs it. The pointers keep nccl.h's types.
#define QSFT_NCCL_API(X)                                                                                     \
  X(ncclGetUniqueId)                                                                                         \
  X(ncclCommInitRankConfig) X(ncclCommGetAsyncError) X(ncclCommFinalize) X(ncclCommDestroy) X(ncclCommAbort) \
      X(ncclAllReduce) X(ncclReduce) X(ncclBroadcast) X(ncclGroupStart) X(ncclGroupEnd) X(ncclGetErrorString)

struct NcclApi {
#define QSFT_NCCL_POINTER(f) decltype(&::f) f = nullptr;
  QSFT_NCCL_API(QSFT_NCCL_POINTER)
#undef QSFT_NCCL_POINTER

  static const NcclApi& get() {
    static const NcclApi api = load();
    return api;
  }

 private:
  static NcclApi load() {
    void* lib = ::dlopen("libnccl.so.2", RTLD_NOW | RTLD_GLOBAL);
    if (!lib) lib = ::dlopen("/usr/local/cuda/lib64/libnccl.so.2", RTLD_NOW | RTLD_GLOBAL);
    if (!lib)
      throw input_error("libnccl.so.2", std::string("NCCL, needed by a GPU world of several ranks, not loadable (") +
                                            ::dlerror() + "); put its folder on LD_LIBRARY_PATH");
    NcclApi api;
#define QSFT_NCCL_LOAD(f)                                     \
  api.f = reinterpret_cast<decltype(&::f)>(::dlsym(lib, #f)); \
  if (!api.f) throw input_error("libnccl.so.2", "has no " #f " (NCCL 2.14 or newer needed)");
    QSFT_NCCL_API(QSFT_NCCL_LOAD)
#undef QSFT_NCCL_LOAD
    return api;
  }
};

void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(e));
}

class NcclComm final : public Comm {
 public:
  NcclComm(const Launch& l, Ops& ops)
      : Comm(l),
        api_(NcclApi::get()),
        stream_(static_cast<cudaStream_t>(ops.stream())),
        timeout_s_(collective_timeout_seconds()) {
    ncclUniqueId id{};
    if (l.rank == 0) nccl(api_.ncclGetUniqueId(&id), "ncclGetUniqueId");
    const std::string mine(reinterpret_cast<const char*>(&id), sizeof id);
    const std::string shared = share_id(mine);
    QSFT_CHECK(shared.size() == sizeof id, "the NCCL unique id arrived with another size");
    std::memcpy(&id, shared.data(), sizeof id);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;  // calls return at once; wait() polls against the deadline
    nccl(api_.ncclCommInitRankConfig(&comm_, l.world_size, id, l.rank, &config), "ncclCommInitRankConfig");
    wait_comm("init");
    cuda_check(cudaMalloc(&scratch_, kScratchBytes), "cudaMalloc");
  }
  ~NcclComm() override {
    cudaFree(scratch_);
    if (std::uncaught_exceptions() == 0) {
      api_.ncclCommFinalize(comm_);
      wait_comm("finalize");
      api_.ncclCommDestroy(comm_);
    } else {
      api_.ncclCommAbort(comm_);
    }
  }
  std::string name() const override { return "nccl"; }

  void all_reduce(Tensor& x) override {
    check(x);
    nccl(api_.ncclAllReduce(x.data, x.data, size_t(x.numel()), ncclFloat, ncclSum, comm_, stream_), "ncclAllReduce");
  }
  void reduce_scatter(Tensor& x) override {
    check(x);
    group(
        [&](int q, float* range, size_t n) {
          nccl(api_.ncclReduce(range, range, n, ncclFloat, ncclSum, q, comm_, stream_), "ncclReduce");
        },
        x);
  }
  void all_gather(Tensor& x) override {
    check(x);
    group([&](int q, float* range,
              size_t n) { nccl(api_.ncclBroadcast(range, range, n, ncclFloat, q, comm_, stream_), "ncclBroadcast"); },
          x);
  }
  void broadcast(Tensor& x, int root) override {
    QSFT_CHECK(x.contiguous() && x.device == Device::CUDA, "NCCL broadcast of a packed device tensor");
    nccl(api_.ncclBroadcast(x.data, x.data, x.nbytes(), ncclUint8, root, comm_, stream_), "ncclBroadcast");
  }
  void barrier() override {
    double none = 0;
    all_reduce_host({&none, 1});
  }
  void all_reduce_host(std::span<double> values) override {
    const size_t bytes = values.size() * sizeof(double);
    QSFT_CHECK(bytes <= kScratchBytes, "all_reduce_host of more than 1 MiB");
    cuda_check(cudaMemcpyAsync(scratch_, values.data(), bytes, cudaMemcpyHostToDevice, stream_), "copy");
    nccl(api_.ncclAllReduce(scratch_, scratch_, values.size(), ncclDouble, ncclSum, comm_, stream_), "ncclAllReduce");
    cuda_check(cudaMemcpyAsync(values.data(), scratch_, bytes, cudaMemcpyDeviceToHost, stream_), "copy");
    wait_stream("all_reduce_host");
  }

 private:
  static constexpr size_t kScratchBytes = kNcclScratchBytes;

  std::string share_id(const std::string& mine) const {
    if (world_size() == 1) return mine;
#if defined(QSFT_HAVE_MPI)
    if (launch_.launcher == "mpirun") return mpi_share_from_rank0(mine);
#endif
    return share_from_rank0(launch_, mine, timeout_s_);
  }

  static void check(const Tensor& x) {
    QSFT_CHECK(x.dtype == DType::F32 && x.contiguous() && x.device == Device::CUDA,
               "NCCL collectives take packed F32 device tensors");
  }

  // f(q, rank q's range, its length) for every rank, in one NCCL group.
  template <class F>
  void group(F&& f, Tensor& x) {
    nccl(api_.ncclGroupStart(), "ncclGroupStart");
    for (int q = 0; q < world_size(); ++q) {
      const ShardRange r = shard_of(x.numel(), world_size(), q);
      f(q, x.f32() + r.offset, size_t(r.count));
    }
    nccl(api_.ncclGroupEnd(), "ncclGroupEnd");
  }

  void nccl(ncclResult_t r, const char* what) {
    if (r != ncclSuccess && r != ncclInProgress)
      throw std::runtime_error(std::string("NCCL: ") + what + " on rank " + std::to_string(rank()) + ": " +
                               api_.ncclGetErrorString(r));
  }

  // Polls until `done` says the work is complete; an asynchronous NCCL error or the deadline ends the job.
  template <class Done>
  void poll(const char* what, Done&& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s_);
    for (;;) {
      ncclResult_t async = ncclSuccess;
      api_.ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess && async != ncclInProgress) abort_job(what, api_.ncclGetErrorString(async));
      if (done()) return;
      if (std::chrono::steady_clock::now() > deadline)
        abort_job(what, ("not complete after " + std::to_string(int(timeout_s_)) +
                         " s: a peer died or hangs (QSFT_COLLECTIVE_TIMEOUT)")
                            .c_str());
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  void wait_comm(const char* what) {
    poll(what, [&] {
      ncclResult_t state = ncclInProgress;
      api_.ncclCommGetAsyncError(comm_, &state);
      return state == ncclSuccess;
    });
  }
  void wait_stream(const char* what) {
    poll(what, [&] {
      const cudaError_t e = cudaStreamQuery(stream_);
      if (e != cudaErrorNotReady) cuda_check(e, what);
      return e == cudaSuccess;
    });
  }

  [[noreturn]] void abort_job(const char* what, const char* why) {
    std::fprintf(stderr, "qwen-sft: rank %d of %d: NCCL %s: %s; ending the job\n", rank(), world_size(), what, why);
    std::fflush(stderr);
    api_.ncclCommAbort(comm_);
    std::_Exit(1);  // the launcher ends the other ranks
  }

  const NcclApi& api_;
  cudaStream_t stream_;
  double timeout_s_;
  ncclComm_t comm_ = nullptr;
  void* scratch_ = nullptr;  // all_reduce_host's device copy of the values
};

}  // namespace

std::unique_ptr<Comm> make_nccl_comm(const Launch& l, Ops& ops) { return std::make_unique<NcclComm>(l, ops); }

void select_local_gpu(const Launch& l) {
  if (!l.distributed()) return;
  int count = 0;
  cuda_check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (l.local_rank >= count)
    throw input_error("launch by " + l.launcher, "local rank " + std::to_string(l.local_rank) +
                                                     " has no GPU: " + std::to_string(count) + " on this node");
  cuda_check(cudaSetDevice(l.local_rank), "cudaSetDevice");
}

}  // namespace qsft
