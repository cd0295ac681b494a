#include "engine/io/model_dir.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <string>

#include "engine/base/error.h"
#include "engine/base/sync_dir.h"

namespace qsft {

namespace fs = std::filesystem;

namespace {

// A folder holding only what an export writes (a model folder): config, weights, tokenizer files. A training run's
// folder (checkpoints, metrics) or anything else is not one, and is never replaced.
bool is_model_folder(const fs::path& dir) {
  static const char* const kFiles[] = {"config.json",      "generation_config.json",  "model.safetensors.index.json",
                                       "tokenizer.json",   "tokenizer_config.json",   "vocab.json",
                                       "merges.txt",       "special_tokens_map.json", "chat_template.jinja",
                                       "added_tokens.json"};
  if (!fs::is_directory(dir) || !fs::exists(dir / "config.json")) return false;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    const bool known = std::find(std::begin(kFiles), std::end(kFiles), name) != std::end(kFiles) ||
                       e.path().extension() == ".safetensors";
    if (!known || !e.is_regular_file()) return false;
  }
  return true;
}

}  // namespace

void publish_model_dir(const fs::path& base_dir, const fs::path& out_dir,
                       const std::function<void(const fs::path& tmp)>& write) {
  std::error_code same_ec;
  if (fs::equivalent(out_dir, base_dir, same_ec))
    throw input_error(out_dir.string(), "is the base model folder (choose another --out)");
  if (fs::exists(out_dir) && !is_model_folder(out_dir))
    throw input_error(out_dir.string(), "exists and is not an exported model (choose another --out)");
  const fs::path parent = fs::absolute(out_dir).parent_path();
  const fs::path tmp = parent / (".tmp-" + out_dir.filename().string() + "." + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(tmp, ec);
  try {
    fs::create_directories(tmp);
    write(tmp);
    if (int e = sync_directory(tmp)) throw std::runtime_error(std::string("fsync: ") + std::strerror(e));
    fs::remove_all(out_dir);
    fs::rename(tmp, out_dir);
    if (int e = sync_directory(parent)) throw std::runtime_error(std::string("fsync: ") + std::strerror(e));
  } catch (const InputError&) {
    fs::remove_all(tmp, ec);
    throw;
  } catch (const std::exception& e) {
    fs::remove_all(tmp, ec);
    throw input_error(out_dir.string(), std::string("model not written: ") + e.what());
  }
}

}  // namespace qsft
