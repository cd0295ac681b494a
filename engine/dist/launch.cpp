#include "engine/dist/launch.h"

#include <cstdlib>

#include "engine/base/error.h"

namespace qsft {

namespace {

struct LauncherVars {
  const char* launcher;
  const char *rank, *size, *local_rank;
};

constexpr LauncherVars kLaunchers[] = {
    {"mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
    {"srun", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
    {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
};

int env_int(const EnvLookup& env, const char* name, int fallback) {
  const char* v = env(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0 || x > 1'000'000)
    throw input_error(std::string("environment variable ") + name, std::string("not a count: '") + v + "'");
  return int(x);
}

}  // namespace

Launch detect_launch(const EnvLookup& env) {
  Launch l;
  for (const LauncherVars& v : kLaunchers) {
    const char* rank = env(v.rank);
    if (!rank || !*rank) continue;
    l.launcher = v.launcher;
    l.rank = env_int(env, v.rank, 0);
    l.world_size = env_int(env, v.size, 1);
    l.local_rank = env_int(env, v.local_rank, 0);
    if (l.world_size < 1 || l.rank >= l.world_size)
      throw input_error(std::string("environment variable ") + v.rank,
                        "rank " + std::to_string(l.rank) + " outside a world of " + std::to_string(l.world_size) +
                            " (" + v.size + ")");
    break;
  }
  if (const char* addr = env("MASTER_ADDR"); addr && *addr) l.master_addr = addr;
  l.master_port = env_int(env, "MASTER_PORT", 0);
  return l;
}

Launch detect_launch() {
  return detect_launch([](const char* name) { return std::getenv(name); });
}

}  // namespace qsft
