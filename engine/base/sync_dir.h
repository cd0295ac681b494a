// Durable renames: a rename is an update of the folder, which a power loss can lose even when the renamed file's
// data were flushed; fsync of the folder itself makes it stick (and orders it before later removals, such as the
// pruning of old checkpoints). Header-only, for every library.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

namespace qsft {

// fsync of a folder ("" = the current one); 0, or the errno of what failed.
inline int sync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  const int err = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

}  // namespace qsft
