#include "engine/dist/comm.h"

#include <algorithm>
#include <cstdlib>

#include "engine/base/error.h"
#include "engine/dist/comm_backends.h"
#include "engine/ops.h"

namespace qsft {

namespace {

// A world of one: the sum over ranks is the value itself, every shard is the whole buffer.
class SingleComm final : public Comm {
 public:
  explicit SingleComm(const Launch& l) : Comm(l) {}
  std::string name() const override { return "single"; }
  void all_reduce(Tensor&) override {}
  void reduce_ranges(Tensor&, std::span<const ShardRange>) override {}
  void all_gather(Tensor&) override {}
  void broadcast(Tensor&, int) override {}
  void barrier() override {}
  void all_reduce_host(std::span<double>) override {}
};

InputError unsupported(const Launch& l, const std::string& what) {
  return input_error("launch by " + l.launcher, "a world of " + std::to_string(l.world_size) + " ranks " + what);
}

}  // namespace

ShardRange shard_of(int64_t n, int world, int rank, int64_t align) {
  const int64_t blocks = (n + align - 1) / align;
  const int64_t begin = std::min(n, blocks * rank / world * align);
  const int64_t end = std::min(n, blocks * (rank + 1) / world * align);
  return {begin, end - begin};
}

ShardRange intersect(ShardRange a, ShardRange b) {
  const int64_t begin = std::max(a.offset, b.offset), end = std::min(a.offset + a.count, b.offset + b.count);
  return {begin, std::max<int64_t>(end - begin, 0)};
}

double collective_timeout_seconds() {
  const char* v = std::getenv("QSFT_COLLECTIVE_TIMEOUT");
  if (!v || !*v) return 600;
  char* end = nullptr;
  const double s = std::strtod(v, &end);
  if (*end != '\0' || !(s > 0))
    throw input_error("environment variable QSFT_COLLECTIVE_TIMEOUT", std::string("not a positive number: ") + v);
  return s;
}

std::unique_ptr<Comm> make_comm(const Launch& l, Ops& ops) {
  const char* forced = std::getenv("QSFT_COMM");  // "mpi" / "nccl": that Comm even in a world of one (checks)
  const std::string want = forced ? forced : "";
  if (!want.empty() && want != "mpi" && want != "nccl")
    throw input_error("environment variable QSFT_COMM", "'" + want + "' is not mpi or nccl");
  if (!l.distributed() && want.empty()) return std::make_unique<SingleComm>(l);
  if (ops.device() == Device::CUDA) {
#if defined(QSFT_HAVE_NCCL)
    return make_nccl_comm(l, ops);
#else
    throw unsupported(l, "on the GPU needs NCCL: this build has none (CMake found no nccl.h / libnccl)");
#endif
  }
  if (l.distributed() && l.launcher != "mpirun" && l.launcher != "srun")
    throw unsupported(l, "on the CPU needs MPI: launch with mpirun (or srun), not " + l.launcher);
#if defined(QSFT_HAVE_MPI)
  return make_mpi_comm(l);
#else
  throw unsupported(l, "on the CPU needs MPI: this build has none (install libopenmpi-dev and configure again)");
#endif
}

#if !defined(QSFT_HAVE_NCCL)
void select_local_gpu(const Launch&) {}
#endif

}  // namespace qsft
