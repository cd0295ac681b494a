#include "engine/train/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "engine/base/error.h"
#include "engine/base/json_writer.h"
#include "engine/train/checkpoint.h"

namespace qsft {

namespace fs = std::filesystem;

namespace {

void check_paths(const fs::path& out, const TrainConfig& cfg) {
  if (!fs::is_directory(cfg.model)) throw input_error(cfg.model, "model directory not found");
  const fs::file_status st = fs::symlink_status(out);
  if (fs::is_symlink(st) && !fs::exists(out))
    throw input_error(out.string(),
                      "output_dir is a symbolic link to " + fs::read_symlink(out).string() + ", which does not exist");
  if (fs::exists(out) && !fs::is_directory(out))
    throw input_error(out.string(), "output_dir exists and is not a directory");
  if (fs::exists(out) && fs::equivalent(out, cfg.model))
    throw input_error(out.string(),
                      "output_dir is the model folder: the run's config.json would replace the "
                      "model's; use another output_dir");
}

int lock_folder(const fs::path& out) {
  const int fd = ::open(out.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw input_error(out.string(), std::string("cannot open output_dir: ") + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK)
      throw input_error(out.string(),
                        "another qwen-sft train holds this output_dir (it is locked); wait for it "
                        "to end, or use another output_dir");
    throw input_error(out.string(), std::string("cannot lock output_dir: ") + std::strerror(err));
  }
  return fd;
}

// Resuming with another data, model, LoRA or optimisation config would silently continue a different run.
void refuse_changed_config(const fs::path& out, const TrainConfig& cfg) {
  if (!latest_checkpoint(out) || !fs::exists(out / "config.json")) return;
  std::ifstream in(out / "config.json", std::ios::binary);
  const std::string before((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::vector<std::string> keys = resume_incompatible_keys(before, cfg.resolved_json);
  if (keys.empty()) return;
  std::string list;
  for (const std::string& k : keys) list += (list.empty() ? "" : ", ") + k;
  throw input_error(cfg.config_path.string(),
                    "output_dir " + out.string() + " holds checkpoints of a run with another config (" + list +
                        " differ from its config.json); resume with that config, or use a new output_dir");
}

}  // namespace

RunDir::RunDir(const TrainConfig& cfg) : path_(cfg.output_dir) {
  check_paths(path_, cfg);
  std::error_code ec;
  fs::create_directories(path_, ec);
  if (ec) throw input_error(path_.string(), "cannot create output_dir: " + ec.message());
  lock_fd_ = lock_folder(path_);
  try {
    remove_checkpoint_temporaries(path_);
    refuse_changed_config(path_, cfg);
    write_file_atomic(path_ / "config.json", cfg.resolved_json);
  } catch (...) {
    ::close(lock_fd_);
    throw;
  }
}

RunDir::~RunDir() { ::close(lock_fd_); }  // closing the last descriptor releases the lock

}  // namespace qsft
