// The NCCL Comm (CUDA backend): collectives enqueued on the Ops stream, so they order with the kernels around them
// without host waits. The unique id goes from rank 0 to the others through MPI under mpirun (when built with it),
// else through the TCP rendezvous (engine/dist/rendezvous.h). Shards may differ in size by one element, which
// ncclReduceScatter / ncclAllGather do not allow: a reduce-scatter is one ncclReduce per owner and an all-gather
// one ncclBroadcast per owner, each group fused by NCCL; a gradient bucket (start_reduce) is one ncclReduce per
// part of it in an owner's shard, on a second, high-priority stream. The communicator is non-blocking, and the
// host waits (all_reduce_host, barrier) poll the stream against the deadline: a peer that died or hangs ends the
// job with a message and ncclCommAbort, instead of a hang.
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
    if (reduce_stream_) {
      cudaEventDestroy(computed_);
      cudaEventDestroy(reduced_);
      cudaStreamDestroy(reduce_stream_);
    }
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
    queued(api_.ncclAllReduce(x.data, x.data, size_t(x.numel()), ncclFloat, ncclSum, comm_, stream_),
           "ncclAllReduce");
  }
  void reduce_ranges(Tensor& x, std::span<const ShardRange> ranges) override { reduce_on(stream_, x, ranges); }
  // On reduce_stream_, after the work queued so far on the Ops stream; wait_reduces makes the Ops stream wait for
  // everything queued on reduce_stream_.
  void start_reduce(Tensor& x, std::span<const ShardRange> ranges) override {
    if (!reduce_stream_) make_reduce_stream();
    cuda_check(cudaEventRecord(computed_, stream_), "cudaEventRecord");
    cuda_check(cudaStreamWaitEvent(reduce_stream_, computed_, 0), "cudaStreamWaitEvent");
    reduce_on(reduce_stream_, x, ranges);
    reducing_ = true;
  }
  void wait_reduces() override {
    if (!reducing_) return;
    cuda_check(cudaEventRecord(reduced_, reduce_stream_), "cudaEventRecord");
    cuda_check(cudaStreamWaitEvent(stream_, reduced_, 0), "cudaStreamWaitEvent");
    reducing_ = false;
  }
  bool overlaps() const override { return true; }
  void all_gather(Tensor& x) override {
    check(x);
    const ShardRange all{0, x.numel()};
    group(x, {&all, 1}, [&](int q, float* part, size_t n) {
      nccl(api_.ncclBroadcast(part, part, n, ncclFloat, q, comm_, stream_), "ncclBroadcast");
    });
  }
  void broadcast(Tensor& x, int root) override {
    QSFT_CHECK(x.contiguous() && x.device == Device::CUDA, "NCCL broadcast of a packed device tensor");
    queued(api_.ncclBroadcast(x.data, x.data, x.nbytes(), ncclUint8, root, comm_, stream_), "ncclBroadcast");
  }
  void barrier() override {
    double none = 0;
    all_reduce_host({&none, 1});
  }
  void all_reduce_host(std::span<double> values) override {
    const size_t bytes = values.size() * sizeof(double);
    QSFT_CHECK(bytes <= kScratchBytes, "all_reduce_host of more than 1 MiB");
    cuda_check(cudaMemcpyAsync(scratch_, values.data(), bytes, cudaMemcpyHostToDevice, stream_), "copy");
    queued(api_.ncclAllReduce(scratch_, scratch_, values.size(), ncclDouble, ncclSum, comm_, stream_),
           "ncclAllReduce");
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

  // Each range's part in rank q's shard reduced to q (in place), on `stream`, in one NCCL group.
  void reduce_on(cudaStream_t stream, Tensor& x, std::span<const ShardRange> ranges) {
    check(x);
    group(x, ranges, [&](int q, float* part, size_t n) {
      nccl(api_.ncclReduce(part, part, n, ncclFloat, ncclSum, q, comm_, stream), "ncclReduce");
    });
  }

  // f(q, the part of a range in rank q's shard, its length) for every range and rank, in one NCCL group.
  template <class F>
  void group(const Tensor& x, std::span<const ShardRange> ranges, F&& f) {
    nccl(api_.ncclGroupStart(), "ncclGroupStart");
    for (const ShardRange& r : ranges)
      for (int q = 0; q < world_size(); ++q)
        if (const ShardRange p = intersect(r, shard(x.numel(), q)); p.count > 0)
          f(q, x.f32() + p.offset, size_t(p.count));
    queued(api_.ncclGroupEnd(), "ncclGroupEnd");
  }

  void make_reduce_stream() {
    int least = 0, greatest = 0;  // the highest priority: a bucket's reduction starts as soon as it is queued
    cuda_check(cudaDeviceGetStreamPriorityRange(&least, &greatest), "cudaDeviceGetStreamPriorityRange");
    cuda_check(cudaStreamCreateWithPriority(&reduce_stream_, cudaStreamNonBlocking, greatest), "cudaStreamCreate");
    cuda_check(cudaEventCreateWithFlags(&computed_, cudaEventDisableTiming), "cudaEventCreate");
    cuda_check(cudaEventCreateWithFlags(&reduced_, cudaEventDisableTiming), "cudaEventCreate");
  }

  // The result of a call outside a group (or of ncclGroupEnd): checked, and returning once NCCL has queued the
  // work on its stream. A non-blocking communicator may still be queuing it when the call returns
  // (ncclInProgress); work queued after it, or an event recorded, would then come before it.
  void queued(ncclResult_t r, const char* what) {
    nccl(r, what);
    if (r == ncclInProgress) wait_comm(what);
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
  cudaStream_t reduce_stream_ = nullptr;  // start_reduce's (made on its first use)
  cudaEvent_t computed_ = nullptr;        // recorded on the Ops stream: what a started reduction waits for
  cudaEvent_t reduced_ = nullptr;         // recorded on reduce_stream_: what the Ops stream waits for
  bool reducing_ = false;                 // reductions started and not yet waited for
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
