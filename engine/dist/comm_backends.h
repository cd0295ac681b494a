// The Comm implementations make_comm chooses from (engine/dist/comm.h); each exists only when its library was
// found at build time (QSFT_HAVE_MPI, QSFT_HAVE_NCCL).
#pragma once
#include <memory>

#include "engine/dist/comm.h"

namespace qsft {

std::unique_ptr<Comm> make_mpi_comm(const Launch& l);            // mpi_comm.cpp
std::unique_ptr<Comm> make_nccl_comm(const Launch& l, Ops& ops);  // nccl_comm.cpp

}  // namespace qsft
