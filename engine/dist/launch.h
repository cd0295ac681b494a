// Who this process is in a multi-process run, read from the launcher's environment:
//   mpirun (Open MPI)  OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK
//   srun (Slurm)       SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID
//   torchrun-style     RANK / WORLD_SIZE / LOCAL_RANK, with MASTER_ADDR / MASTER_PORT for the rendezvous
// checked in that order (Open MPI under Slurm sets both: mpirun's names win). Nothing set: a world of one. Each rank
// trains on the GPU of its local rank.
#pragma once
#include <functional>
#include <string>

namespace qsft {

struct Launch {
  std::string launcher = "single";  // single | mpirun | srun | torchrun
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr;  // torchrun-style (and srun when set): the rendezvous host and port
  int master_port = 0;
  bool distributed() const { return world_size > 1; }
};

using EnvLookup = std::function<const char*(const char*)>;  // getenv, or a test's table

// InputError (naming the variable) for a value that is not a number, a rank outside [0, world) or a world < 1.
Launch detect_launch(const EnvLookup& env);
Launch detect_launch();  // from the process environment

}  // namespace qsft
