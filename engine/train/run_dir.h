// A training run's output_dir, held for the run's life. Opening it: the model folder must exist; output_dir must
// be a folder or absent (not a file, not a dangling symbolic link) and not the model folder (the run's config.json
// would replace the model's); it is created, then locked (flock, exclusive, non-blocking: a second `train` into
// it stops with an error instead of clashing on its checkpoints; the lock goes with the process, even on kill -9),
// cleared of dead writes' temporaries, checked against a changed config when it holds checkpoints, and given the
// run's config.json.
#pragma once
#include <filesystem>

#include "engine/train/train_config.h"

namespace qsft {

class RunDir {
 public:
  explicit RunDir(const TrainConfig& cfg);  // InputError naming the folder for each case above
  ~RunDir();
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int lock_fd_ = -1;
};

}  // namespace qsft
