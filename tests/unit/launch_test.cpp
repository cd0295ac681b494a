// Launch detection from the launchers' environments, and the shard map of the ZeRO-1 optimizer.
#include <gtest/gtest.h>
#include <unistd.h>

#include <future>
#include <map>
#include <string>
#include <vector>

#include "engine/base/error.h"
#include "engine/dist/comm.h"
#include "engine/dist/launch.h"
#include "engine/dist/rendezvous.h"
#include "engine/ops.h"

namespace qsft {
namespace {

Launch launch_from(const std::map<std::string, std::string>& vars) {
  return detect_launch([&](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

TEST(Launch, NothingSetIsAWorldOfOne) {
  const Launch l = launch_from({});
  EXPECT_EQ(l.launcher, "single");
  EXPECT_EQ(l.world_size, 1);
  EXPECT_FALSE(l.distributed());
}

TEST(Launch, ReadsEachLauncher) {
  Launch l =
      launch_from({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "8"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
  EXPECT_EQ(l.launcher, "mpirun");
  EXPECT_EQ(l.rank, 3);
  EXPECT_EQ(l.world_size, 8);
  EXPECT_EQ(l.local_rank, 1);
  l = launch_from({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "5"}});
  EXPECT_EQ(l.launcher, "srun");
  EXPECT_EQ(l.rank, 5);
  EXPECT_EQ(l.world_size, 16);
  l = launch_from(
      {{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29500"}});
  EXPECT_EQ(l.launcher, "torchrun");
  EXPECT_EQ(l.rank, 1);
  EXPECT_EQ(l.master_addr, "node7");
  EXPECT_EQ(l.master_port, 29500);
}

TEST(Launch, MpirunWinsOverSlurm) {  // mpirun inside a Slurm allocation sees both
  const Launch l = launch_from(
      {{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}, {"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}});
  EXPECT_EQ(l.launcher, "mpirun");
  EXPECT_EQ(l.world_size, 2);
}

TEST(Launch, BadValuesNameTheVariable) {
  try {
    launch_from({{"RANK", "x1"}, {"WORLD_SIZE", "2"}});
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("RANK"), std::string::npos) << e.what();
  }
  EXPECT_THROW(launch_from({{"RANK", "2"}, {"WORLD_SIZE", "2"}}), InputError);
}

TEST(Shards, CoverTheBufferInOrder) {
  for (int64_t n : {0, 1, 7, 1000, 77824})
    for (int world : {1, 2, 3, 4, 8}) {
      int64_t next = 0, largest = 0, smallest = n;
      for (int r = 0; r < world; ++r) {
        const ShardRange s = shard_of(n, world, r);
        EXPECT_EQ(s.offset, next);
        next += s.count;
        largest = std::max(largest, s.count);
        smallest = std::min(smallest, s.count);
      }
      EXPECT_EQ(next, n);
      EXPECT_LE(largest - smallest, 1);
    }
}

// With an alignment (adamw_8bit's 256) every range starts on a block boundary, the ranks split the blocks as
// evenly as the elements without one, and the last range ends at n.
TEST(Shards, AlignedRangesStartOnBlocks) {
  for (int64_t n : {0, 1, 255, 256, 1000, 77824, 77825})
    for (int world : {1, 2, 3, 4, 8}) {
      int64_t next = 0, largest = 0, smallest = n;
      for (int r = 0; r < world; ++r) {
        const ShardRange s = shard_of(n, world, r, 256);
        EXPECT_EQ(s.offset, next);
        EXPECT_EQ(s.offset % 256, 0) << n << " " << world << " " << r;
        next += s.count;
        largest = std::max(largest, s.count);
        smallest = std::min(smallest, s.count);
      }
      EXPECT_EQ(next, n);
      EXPECT_LE(largest - smallest, 256);
    }
  EXPECT_EQ(shard_of(1000, 2, 1, 256).offset, 512);  // 4 blocks: 2 each, the second one short
}

TEST(Comm, AWorldOfOneNeedsNoLibrary) {
  auto ops = make_cpu_ops();
  auto comm = make_comm(Launch{}, *ops);
  EXPECT_EQ(comm->name(), "single");
  float x[3] = {1, 2, 3};
  Tensor t(x, DType::F32, {3});
  comm->reduce_scatter(t);
  comm->all_gather(t);
  double h[2] = {4, 5};
  comm->all_reduce_host(h);
  EXPECT_EQ(x[2], 3.0f);
  EXPECT_EQ(h[1], 5.0);
}

TEST(Comm, TorchrunOnTheCpuIsRefused) {  // no MPI world to join: a clear error, not a hang
  auto ops = make_cpu_ops();
  Launch l;
  l.launcher = "torchrun";
  l.world_size = 2;
  EXPECT_THROW(make_comm(l, *ops), InputError);
}

// Three ranks in threads of this process: rank 0's bytes reach ranks 1 and 2 through localhost.
TEST(Rendezvous, SharesRankZerosBytes) {
  const int port = 20000 + int(::getpid() % 20000);  // one test process per port pair
  std::vector<std::future<std::string>> got;
  for (int r = 2; r >= 0; --r) {  // the readers first: they retry until rank 0 listens
    Launch l;
    l.launcher = "torchrun";
    l.rank = r;
    l.world_size = 3;
    l.master_addr = "localhost";
    l.master_port = port;
    got.push_back(std::async(std::launch::async,
                             [l] { return share_from_rank0(l, l.rank == 0 ? std::string("id\0bytes", 8) : "", 20); }));
  }
  for (auto& f : got) EXPECT_EQ(f.get(), std::string("id\0bytes", 8));
}

TEST(Rendezvous, NamesWhatIsMissing) {
  Launch l;
  l.launcher = "torchrun";
  l.world_size = 2;
  EXPECT_THROW(rendezvous_port(l), InputError);  // no MASTER_ADDR / MASTER_PORT
  l.rank = 1;
  l.master_addr = "localhost";
  l.master_port = 1;  // nobody listens on port 2
  try {
    share_from_rank0(l, "", 0.3);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("could not reach rank 0 at localhost:2"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qsft
