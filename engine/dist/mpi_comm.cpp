// The MPI Comm (CPU backend): every collective is point-to-point messages to and from each peer, then the sums
// taken on this rank in rank order. So the result does not depend on MPI's choice of algorithm: bit-identical run
// to run and on every rank. Messages are non-blocking and polled against a deadline, so a peer that never sends
// is named. O(world^2) messages: meant for the CPU reference and its tests, not for speed.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <thread>
#include <vector>

#include "engine/base/error.h"
#include "engine/dist/comm_backends.h"

namespace qsft {

namespace {

void mpi_check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw std::runtime_error(std::string("MPI: ") + what + " failed (" + std::to_string(rc) + ")");
}

class MpiComm final : public Comm {
 public:
  explicit MpiComm(const Launch& l) : Comm(l), timeout_s_(collective_timeout_seconds()) {
    int provided = 0;
    mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    int rank = 0, size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (rank != l.rank || size != l.world_size)
      throw std::runtime_error("MPI sees rank " + std::to_string(rank) + " of " + std::to_string(size) + ", the " +
                               l.launcher + " environment rank " + std::to_string(l.rank) + " of " +
                               std::to_string(l.world_size));
  }
  // Finalized only on a normal end: a rank leaving by an exception exits without it, and the launcher, seeing a
  // rank exit before MPI_Finalize, ends the others (MPI_Finalize would wait for them).
  ~MpiComm() override {
    if (std::uncaught_exceptions() == 0) MPI_Finalize();
  }
  std::string name() const override { return "mpi"; }

  void all_reduce(Tensor& x) override {
    reduce_scatter(x);
    all_gather(x);
  }

  // Each range's part in rank q's shard goes to q; the parts in my shard come from every peer and are summed
  // here, element by element in rank order: the sums do not depend on how the buffer is split into ranges.
  void reduce_ranges(Tensor& x, std::span<const ShardRange> ranges) override {
    float* data = host_f32(x);
    std::vector<ShardRange> mine;  // the ranges' parts in my shard, m elements in all
    int64_t m = 0;
    for (const ShardRange& r : ranges)
      if (const ShardRange p = intersect(r, shard(x.numel())); p.count > 0) {
        mine.push_back(p);
        m += p.count;
      }
    std::vector<float>& peers = received_;  // peer q's copy of my parts at q * m (kept: no allocation per step)
    peers.resize(size_t(m) * size_t(world_size()));
    std::vector<Message> sends, recvs;
    for (int q = 0; q < world_size(); ++q) {
      if (q == rank()) continue;
      for (const ShardRange& r : ranges)  // in range order on both sides: MPI matches the messages in order
        if (const ShardRange p = intersect(r, shard(q, x.numel())); p.count > 0)
          sends.push_back({q, data + p.offset, p.count * 4});
      int64_t at = int64_t(q) * m;
      for (const ShardRange& p : mine) {
        recvs.push_back({q, peers.data() + at, p.count * 4});
        at += p.count;
      }
    }
    exchange(sends, recvs, "reduce_scatter");
    int64_t at = 0;
    for (const ShardRange& p : mine) {
      sum_in_rank_order(data + p.offset, at, m, p.count);
      at += p.count;
    }
  }

  void all_gather(Tensor& x) override {
    float* data = host_f32(x);
    const ShardRange mine = shard(x.numel());
    std::vector<Message> sends, recvs;
    for (int q = 0; q < world_size(); ++q) {
      if (q == rank()) continue;
      const ShardRange theirs = shard(q, x.numel());
      sends.push_back({q, data + mine.offset, mine.count * 4});
      recvs.push_back({q, data + theirs.offset, theirs.count * 4});
    }
    exchange(sends, recvs, "all_gather");
  }

  void broadcast(Tensor& x, int root) override {
    QSFT_CHECK(x.contiguous() && x.device == Device::CPU, "broadcast of a packed host tensor");
    std::vector<Message> sends, recvs;
    if (rank() == root) {
      for (int q = 0; q < world_size(); ++q)
        if (q != root) sends.push_back({q, x.data, int64_t(x.nbytes())});
    } else {
      recvs.push_back({root, x.data, int64_t(x.nbytes())});
    }
    exchange(sends, recvs, "broadcast");
  }

  void barrier() override {
    std::vector<double> none(1, 0.0);
    all_reduce_host(none);
  }

  void all_reduce_host(std::span<double> values) override {
    const size_t n = values.size();
    std::vector<double> all(n * size_t(world_size()));
    std::vector<Message> sends, recvs;
    for (int q = 0; q < world_size(); ++q) {
      if (q == rank()) continue;
      sends.push_back({q, values.data(), int64_t(n * 8)});
      recvs.push_back({q, all.data() + size_t(q) * n, int64_t(n * 8)});
    }
    exchange(sends, recvs, "all_reduce_host");
    std::copy(values.begin(), values.end(), all.begin() + std::ptrdiff_t(size_t(rank()) * n));
    for (size_t i = 0; i < n; ++i) {
      double s = all[i];
      for (int q = 1; q < world_size(); ++q) s += all[size_t(q) * n + i];
      values[i] = s;
    }
  }

 private:
  struct Message {
    int peer;
    void* data;
    int64_t bytes;
  };

  // out[i] = ((c0 + c1) + c2) + ... for i < count, c_q rank q's value: out itself for this rank, else
  // received_[q * m + at + i]. The same order on every run and for any split into ranges.
  void sum_in_rank_order(float* out, int64_t at, int64_t m, int64_t count) const {
    auto value = [&](int q, int64_t i) { return q == rank() ? out[i] : received_[size_t(q * m + at + i)]; };
    for (int64_t i = 0; i < count; ++i) {
      float s = value(0, i);
      for (int q = 1; q < world_size(); ++q) s += value(q, i);
      out[i] = s;
    }
  }

  ShardRange shard(int64_t n) const { return Comm::shard(n); }
  ShardRange shard(int q, int64_t n) const { return Comm::shard(n, q); }

  static float* host_f32(const Tensor& x) {
    QSFT_CHECK(x.dtype == DType::F32 && x.contiguous() && x.device == Device::CPU,
               "MPI collectives take packed F32 host tensors (the CPU backend's)");
    return x.f32();
  }

  // Posts every send and receive of one collective, then polls them until all are done or the deadline passes:
  // then the ranks whose messages never came are named and the job is ended (MPI_Abort ends every rank).
  void exchange(const std::vector<Message>& sends, const std::vector<Message>& recvs, const char* what) {
    const int tag = int(++sequence_ % 30000);
    for (const auto* list : {&sends, &recvs})
      for (const Message& m : *list) QSFT_CHECK(m.bytes <= INT32_MAX, "an MPI message over 2 GiB");
    std::vector<MPI_Request> req;
    for (const Message& m : recvs) {
      req.emplace_back();
      mpi_check(MPI_Irecv(m.data, int(m.bytes), MPI_BYTE, m.peer, tag, MPI_COMM_WORLD, &req.back()), "MPI_Irecv");
    }
    for (const Message& m : sends) {
      req.emplace_back();
      mpi_check(MPI_Isend(m.data, int(m.bytes), MPI_BYTE, m.peer, tag, MPI_COMM_WORLD, &req.back()), "MPI_Isend");
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s_);
    for (int done = 0;;) {
      mpi_check(MPI_Testall(int(req.size()), req.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall");
      if (done) return;
      if (std::chrono::steady_clock::now() > deadline) abort_job(recvs, req, what);
      std::this_thread::sleep_for(std::chrono::microseconds(50));  // oversubscribed ranks leave the cores to others
    }
  }

  [[noreturn]] void abort_job(const std::vector<Message>& recvs, std::vector<MPI_Request>& req, const char* what) {
    std::string missing;
    for (size_t i = 0; i < recvs.size(); ++i) {
      int arrived = 0;
      MPI_Test(&req[i], &arrived, MPI_STATUS_IGNORE);
      if (!arrived) missing += (missing.empty() ? "" : ", ") + std::to_string(recvs[i].peer);
    }
    if (missing.empty()) missing = "?(its sends were not received)";
    std::fprintf(stderr,
                 "qwen-sft: rank %d: collective %s #%lld waited %.0f s for rank %s, which died or hangs "
                 "(QSFT_COLLECTIVE_TIMEOUT); ending the job\n",
                 rank(), what, (long long)sequence_, timeout_s_, missing.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::abort();
  }

  double timeout_s_;
  int64_t sequence_ = 0;
  std::vector<float> received_;  // reduce_ranges' receive buffer
};

}  // namespace

std::unique_ptr<Comm> make_mpi_comm(const Launch& l) { return std::make_unique<MpiComm>(l); }

std::string mpi_share_from_rank0(const std::string& bytes) {
  mpi_check(MPI_Init(nullptr, nullptr), "MPI_Init");
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  uint64_t n = bytes.size();
  mpi_check(MPI_Bcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD), "MPI_Bcast");
  std::string out = rank == 0 ? bytes : std::string(n, '\0');
  mpi_check(MPI_Bcast(out.data(), int(n), MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
  MPI_Finalize();
  return out;
}

}  // namespace qsft
