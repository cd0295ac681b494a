// Rank 0's bytes to every rank over TCP, for the NCCL unique id when no MPI job is there to carry it (torchrun,
// srun). Rank 0 listens on MASTER_PORT + 1 (MASTER_PORT itself is torchrun's own store), the others connect to
// MASTER_ADDR there, retrying until the deadline, and read the bytes. Needs nothing but POSIX sockets.
#pragma once
#include <string>

#include "engine/dist/launch.h"

namespace qsft {

// The port the rendezvous uses: MASTER_PORT + 1. InputError when MASTER_ADDR or MASTER_PORT is unset.
int rendezvous_port(const Launch& l);
// Rank 0 passes the bytes and gets them back once every other rank has read them; the others get rank 0's.
// std::runtime_error naming who was not reached within timeout_s seconds.
std::string share_from_rank0(const Launch& l, const std::string& bytes, double timeout_s);

}  // namespace qsft
