// Comm: the collectives data-parallel training needs, over the ranks of one run (engine/dist/launch.h), on the
// backend's F32 tensors. Three implementations behind make_comm:
//   single  a world of one: every collective is a no-op (no MPI, no NCCL needed at run time)
//   mpi     the CPU backend under mpirun/srun (built when CMake finds MPI): point-to-point messages, sums in rank
//           order, so results are bit-identical run to run and equal on every rank
//   nccl    the CUDA backend (built when CMake finds NCCL): its unique id shared through MPI under mpirun, else
//           through a TCP rendezvous at MASTER_ADDR:MASTER_PORT (engine/dist/rendezvous.h)
//
// Ordering contract. Every rank calls the same collectives in the same order with the same sizes (the trainer's
// steps are identical on every rank, only the data differs). A tensor collective runs after all work queued
// before it on the backend (CPU: synchronous; CUDA: enqueued on the Ops stream, so no host wait and no event is
// needed around it) and work queued after it sees its result; the host reads the result the usual way
// (Ops::copy_to_host, which waits for the stream). all_reduce_host is blocking: it returns the reduced values.
//
// Shards: a flat buffer of n elements is split in world_size contiguous ranges (shard_of); rank r owns range r.
// The ZeRO-1 optimizer keeps the AdamW moments of its own range only.
//
// Overlapped reduction (engine/dist/grad_buckets.h): start_reduce queues the reduction of some ranges behind the
// work queued so far without holding up the work queued after it (NCCL: on the Comm's own stream, after an event
// recorded on the Ops stream); after wait_reduces, the work queued next sees every reduction started. Between the
// first start_reduce and wait_reduces no other collective is called. MPI and single reduce at once (same sums).
//
// Timeouts: a collective that waits longer than QSFT_COLLECTIVE_TIMEOUT seconds (default 600) for a peer ends the
// whole job with a message naming the rank it waited for (MPI) or its own rank and the collective (NCCL), never
// a silent hang. A rank that exits is noticed by the launcher (mpirun and srun end the job and name it).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "engine/base/tensor.h"
#include "engine/dist/launch.h"

namespace qsft {

class Ops;

struct ShardRange {
  int64_t offset = 0, count = 0;
};
// Rank r's range of n elements over `world` ranks: [n r / w, n (r + 1) / w) (sizes differ by at most one). With
// align > 1 the ranks split the ceil(n / align) blocks of align elements that way instead, so every range starts
// on a block boundary (adamw_8bit's blocks of 256: a rank's shard owns whole blocks of the 8-bit state).
ShardRange shard_of(int64_t n, int world, int rank, int64_t align = 1);
// The elements two ranges share (count 0 when none).
ShardRange intersect(ShardRange a, ShardRange b);

class Comm {
 public:
  virtual ~Comm() = default;
  int rank() const { return launch_.rank; }
  int world_size() const { return launch_.world_size; }
  int local_rank() const { return launch_.local_rank; }
  const Launch& launch() const { return launch_; }
  virtual std::string name() const = 0;
  ShardRange shard(int64_t n) const { return shard_of(n, world_size(), rank(), shard_align_); }
  ShardRange shard(int64_t n, int q) const { return shard_of(n, world_size(), q, shard_align_); }  // rank q's
  // The block size every shard map of this Comm starts on (default 1); set before the first sharded collective.
  void align_shards(int64_t align) { shard_align_ = align; }

  // x (F32, packed) = the sum over ranks of x, on every rank.
  virtual void all_reduce(Tensor& x) = 0;
  // In place, for ranges of x: after it, the part of each range inside this rank's shard(n) holds the sum over
  // ranks of that part; the rest of the ranges is left unspecified (the other ranks own it). Ranges covering x
  // once, in any order and split, give reduce_scatter's result bit for bit (MPI: each element summed in rank order).
  virtual void reduce_ranges(Tensor& x, std::span<const ShardRange> ranges) = 0;
  // In place: after it, x's range shard(n) holds the sum over ranks of that range; the other ranges are left
  // unspecified (they are the gradients the other ranks own).
  void reduce_scatter(Tensor& x) {
    const ShardRange all{0, x.numel()};
    reduce_ranges(x, {&all, 1});
  }
  // reduce_ranges overlapped with the work queued after it, and the wait for every one started (see above).
  virtual void start_reduce(Tensor& x, std::span<const ShardRange> ranges) { reduce_ranges(x, ranges); }
  virtual void wait_reduces() {}
  // Whether start_reduce runs beside the compute (NCCL) rather than at once (MPI, single).
  virtual bool overlaps() const { return false; }
  // In place: every rank's range shard(n) of its x, copied into the same range on every rank.
  virtual void all_gather(Tensor& x) = 0;
  // x of rank `root` to every rank.
  virtual void broadcast(Tensor& x, int root) = 0;
  virtual void barrier() = 0;
  // Host values summed over ranks (in rank order, doubles): step statistics, the squared gradient norm.
  virtual void all_reduce_host(std::span<double> values) = 0;

 protected:
  explicit Comm(const Launch& l) : launch_(l) {}
  Launch launch_;
  int64_t shard_align_ = 1;
};

// The Comm for this launch and backend: single for a world of one; mpi for the CPU backend; nccl for the CUDA
// backend. A world > 1 that this build cannot serve (no MPI, no NCCL, the CPU backend without mpirun/srun) is
// an InputError saying what is missing. QSFT_COMM=mpi or nccl takes that Comm even in a world of one (the GPU
// check trains through NCCL on one GPU).
std::unique_ptr<Comm> make_comm(const Launch& l, Ops& ops);

// Seconds a collective may wait for its peers: QSFT_COLLECTIVE_TIMEOUT, default 600.
double collective_timeout_seconds();

// Makes the launch's local rank the current GPU (before the CUDA backend is created). No-op without CUDA or in a
// world of one.
void select_local_gpu(const Launch& l);

}  // namespace qsft
