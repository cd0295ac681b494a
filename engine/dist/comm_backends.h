// The Comm implementations make_comm chooses from (engine/dist/comm.h); each exists only when its library was
// found at build time (QSFT_HAVE_MPI, QSFT_HAVE_NCCL).
#pragma once
#include <memory>
#include <string>

#include "engine/dist/comm.h"

namespace qsft {

std::unique_ptr<Comm> make_mpi_comm(const Launch& l);  // mpi_comm.cpp
// Rank 0's bytes to every rank of the mpirun job, MPI initialised and finalised around it (the NCCL unique id).
std::string mpi_share_from_rank0(const std::string& bytes);       // mpi_comm.cpp
std::unique_ptr<Comm> make_nccl_comm(const Launch& l, Ops& ops);  // nccl_comm.cpp

}  // namespace qsft
