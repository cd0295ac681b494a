// A rank that joins the MPI job and then never takes part in a collective: `mpi_stall SECONDS`. The multi-rank
// failure test runs it beside qwen-sft (mpirun -np 1 qwen-sft ... : -np 1 mpi_stall 60) to check that the other
// rank's collective times out naming it, instead of hanging.
#include <mpi.h>

#include <chrono>
#include <cstdlib>
#include <thread>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  std::this_thread::sleep_for(std::chrono::seconds(argc > 1 ? std::atoi(argv[1]) : 60));
  MPI_Finalize();
  return 0;
}
