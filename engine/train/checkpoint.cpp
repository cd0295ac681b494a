#include "engine/train/checkpoint.h"

#include <simdjson.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "engine/base/error.h"
#include "engine/base/sync_dir.h"
#include "engine/io/full_model.h"
#include "engine/io/json_writer.h"
#include "engine/io/peft_adapter.h"
#include "engine/io/safetensors.h"

namespace qsft {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPrefix = "checkpoint-";
constexpr const char* kTmpPrefix = ".tmp-checkpoint-";

// The step of a checkpoint-<step> directory name, or -1.
int64_t checkpoint_step(const fs::path& p) {
  const std::string name = p.filename().string();
  if (name.rfind(kPrefix, 0) != 0) return -1;
  const std::string digits = name.substr(std::string(kPrefix).size());
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}

std::vector<std::pair<int64_t, fs::path>> checkpoints(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> v;
  if (!fs::is_directory(dir)) return v;
  for (const auto& e : fs::directory_iterator(dir))
    if (int64_t s = checkpoint_step(e.path()); s >= 0 && e.is_directory()) v.emplace_back(s, e.path());
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

void save_checkpoint(const fs::path& output_dir, const TrainedWeights& weights, const Checkpoint& ck,
                     const std::string& base_model, int64_t keep) {
  const std::string step = std::to_string(ck.state.global_step);
  const fs::path tmp = output_dir / (kTmpPrefix + step + "." + std::to_string(::getpid()));
  const fs::path final_dir = output_dir / (kPrefix + step);
  std::error_code ec;
  fs::remove_all(tmp, ec);
  try {
    fs::create_directories(tmp);
    if (weights.full)
      write_full_model(base_model, *weights.full, ck.lora, tmp, DType::F32);
    else
      write_peft_adapter(tmp, *weights.lora, ck.lora, base_model);
    const int64_t P = weights.num_params();
    write_safetensors(tmp / "optimizer.safetensors", {{"exp_avg", DType::F32, {P}, ck.exp_avg.data()},
                                                      {"exp_avg_sq", DType::F32, {P}, ck.exp_avg_sq.data()}});
    Json state = Json::object();
    state.set("global_step", ck.state.global_step)
        .set("log_loss_sum", ck.state.log_loss_sum)
        .set("log_steps", ck.state.log_steps)
        .set("log_accuracy_sum", ck.state.log_accuracy_sum)
        .set("log_micro_batches", ck.state.log_micro_batches)
        .set("num_tokens", ck.state.num_tokens)
        .set("train_seconds", ck.state.train_seconds);
    write_file_atomic(tmp / "trainer_state.json", state.dump({2, true}));
    // Test hook: hold the finished temporary directory before the rename, so that a test can kill -9 here.
    if (const char* ms = std::getenv("QSFT_TEST_CHECKPOINT_PAUSE_MS"))
      std::this_thread::sleep_for(std::chrono::milliseconds(std::atoll(ms)));
    fs::remove_all(final_dir);
    fs::rename(tmp, final_dir);  // the checkpoint appears complete or not at all
    // ... and stays after a power loss, which must not keep the pruning below but lose this rename.
    if (int e = sync_directory(output_dir)) throw std::runtime_error(std::string("fsync: ") + std::strerror(e));
  } catch (const std::exception& e) {
    fs::remove_all(tmp, ec);
    throw input_error(final_dir.string(),
                      std::string("checkpoint not written (the previous one is intact): ") + e.what());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  if (keep > 0) {
    auto all = checkpoints(output_dir);
    for (size_t i = 0; i + size_t(keep) < all.size(); ++i) fs::remove_all(all[i].second);
  }
}

void remove_checkpoint_temporaries(const fs::path& output_dir) {
  if (fs::is_directory(output_dir))
    for (const auto& e : fs::directory_iterator(output_dir))
      if (e.path().filename().string().rfind(kTmpPrefix, 0) == 0) fs::remove_all(e.path());
}

std::optional<fs::path> latest_checkpoint(const fs::path& output_dir) {
  auto all = checkpoints(output_dir);
  if (all.empty()) return std::nullopt;
  return all.back().second;
}

Checkpoint load_checkpoint(const fs::path& dir, const TrainedWeights& weights) {
  Checkpoint ck;
  ck.lora = weights.full ? weights.full->load(dir.string()) : read_peft_weights(dir, *weights.lora);
  SafetensorsFile opt = SafetensorsFile::open(dir / "optimizer.safetensors");
  for (auto [name, dst] : {std::pair{"exp_avg", &ck.exp_avg}, std::pair{"exp_avg_sq", &ck.exp_avg_sq}}) {
    const TensorInfo* t = opt.find(name);
    if (!t || t->numel() != weights.num_params() || t->dtype != DType::F32)
      throw input_error(opt.path(), std::string("tensor ") + name + " missing or not F32 [" +
                                        std::to_string(weights.num_params()) + "] (another LoRA configuration?)");
    dst->resize(size_t(t->numel()));
    copy_to_f32(*t, dst->data());
  }
  const std::string state_path = (dir / "trainer_state.json").string();
  simdjson::dom::parser parser;
  simdjson::dom::element s;
  if (parser.load(state_path).get(s)) throw input_error(state_path, "missing or not valid JSON");
  try {
    ck.state.global_step = int64_t(s["global_step"]);
    ck.state.log_loss_sum = double(s["log_loss_sum"]);
    ck.state.log_steps = int64_t(s["log_steps"]);
    ck.state.log_accuracy_sum = double(s["log_accuracy_sum"]);
    ck.state.log_micro_batches = int64_t(s["log_micro_batches"]);
    ck.state.num_tokens = int64_t(s["num_tokens"]);
    ck.state.train_seconds = double(s["train_seconds"]);
  } catch (const simdjson::simdjson_error& e) {
    throw input_error(state_path, std::string("missing or mistyped field: ") + e.what());
  }
  return ck;
}

}  // namespace qsft
