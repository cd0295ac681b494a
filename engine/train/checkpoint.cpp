#include "engine/train/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>
#include <type_traits>

#include "engine/base/error.h"
#include "engine/base/json_reader.h"
#include "engine/base/json_writer.h"
#include "engine/base/sync_dir.h"
#include "engine/io/full_model.h"
#include "engine/io/peft_adapter.h"
#include "engine/io/safetensors.h"
#include "kernels/adamw8bit.h"

namespace qsft {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPrefix = "checkpoint-";
constexpr const char* kTmpPrefix = ".tmp-checkpoint-";

std::vector<std::pair<int64_t, fs::path>> checkpoints(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> v;
  if (!fs::is_directory(dir)) return v;
  for (const auto& e : fs::directory_iterator(dir))
    if (int64_t s = checkpoint_step(e.path()); s >= 0 && e.is_directory()) v.emplace_back(s, e.path());
  std::sort(v.begin(), v.end());
  return v;
}

// The optimizer state's tensors: adamw_torch's F32 moments, or adamw_8bit's codes (U8, same names) and absmax.
std::vector<SafetensorsEntry> optimizer_entries(const Checkpoint& ck, int64_t P) {
  if (ck.exp_avg_codes.empty())
    return {{"exp_avg", DType::F32, {P}, ck.exp_avg.data()}, {"exp_avg_sq", DType::F32, {P}, ck.exp_avg_sq.data()}};
  const int64_t B = int64_t(ck.exp_avg_absmax.size());
  return {{"exp_avg", DType::U8, {P}, ck.exp_avg_codes.data()},
          {"exp_avg_sq", DType::U8, {P}, ck.exp_avg_sq_codes.data()},
          {"exp_avg_absmax", DType::F32, {B}, ck.exp_avg_absmax.data()},
          {"exp_avg_sq_absmax", DType::F32, {B}, ck.exp_avg_sq_absmax.data()}};
}

// One tensor of optimizer.safetensors, of this dtype and element count, into `dst`.
template <class T>
void read_state(const SafetensorsFile& f, const char* name, DType dtype, int64_t n, std::vector<T>& dst) {
  const TensorInfo* t = f.find(name);
  if (!t || t->numel() != n || t->dtype != dtype)
    throw input_error(f.path(), std::string("tensor ") + name + " missing or not " + dtype_name(dtype) + " [" +
                                    std::to_string(n) + "] (another LoRA configuration or finetuning_type?)");
  dst.resize(size_t(n));
  if constexpr (std::is_same_v<T, float>)
    copy_to_f32(*t, dst.data());
  else
    std::memcpy(dst.data(), t->data, t->nbytes);
}

// adamw_torch's moments, or adamw_8bit's (told apart by exp_avg's dtype).
void read_optimizer(const SafetensorsFile& opt, int64_t P, Checkpoint& ck) {
  const TensorInfo* m = opt.find("exp_avg");
  if (m && m->dtype == DType::U8) {
    const int64_t B = (P + cpu::kAdamW8bitBlock - 1) / cpu::kAdamW8bitBlock;
    read_state(opt, "exp_avg", DType::U8, P, ck.exp_avg_codes);
    read_state(opt, "exp_avg_sq", DType::U8, P, ck.exp_avg_sq_codes);
    read_state(opt, "exp_avg_absmax", DType::F32, B, ck.exp_avg_absmax);
    read_state(opt, "exp_avg_sq_absmax", DType::F32, B, ck.exp_avg_sq_absmax);
    return;
  }
  read_state(opt, "exp_avg", DType::F32, P, ck.exp_avg);
  read_state(opt, "exp_avg_sq", DType::F32, P, ck.exp_avg_sq);
}

// LoRA moments are in LoraLayout's flat order, which stacks the A's of a group; optimizer.safetensors says so in
// its metadata (kLoraOrderKey). An older checkpoint's are in the unstacked order: F32 moments are moved into this
// order, adamw_8bit's (quantized in blocks that run across parameters) cannot be and are refused.
constexpr const char* kLoraOrderKey = "lora_param_order";
constexpr const char* kLoraOrder = "stacked_a";

void to_lora_order(const SafetensorsFile& opt, const LoraLayout& layout, Checkpoint& ck) {
  const auto& meta = opt.metadata();
  if (auto it = meta.find(kLoraOrderKey); it != meta.end()) {
    if (it->second != kLoraOrder)
      throw input_error(opt.path(), std::string(kLoraOrderKey) + " \"" + it->second + "\" is not \"" +
                                           kLoraOrder + "\" (written by a newer qwen-sft?)");
    return;
  }
  if (!layout.stacks()) return;  // no group with two adapted modules: both orders are the same
  if (!ck.exp_avg_codes.empty())
    throw input_error(opt.path(), "adamw_8bit state written before the LoRA parameters were reordered (stacked "
                                     "A's): it cannot be resumed by this version; resume with the version that "
                                     "wrote it, or start from the adapter (--adapter) with fresh optimizer state");
  ck.exp_avg = layout.from_unstacked(ck.exp_avg);
  ck.exp_avg_sq = layout.from_unstacked(ck.exp_avg_sq);
}

}  // namespace

int64_t checkpoint_step(const fs::path& p) {
  const std::string name = p.filename().string();
  if (name.rfind(kPrefix, 0) != 0) return -1;
  const std::string digits = name.substr(std::string(kPrefix).size());
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}

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
    std::map<std::string, std::string> meta;
    if (weights.lora) meta[kLoraOrderKey] = kLoraOrder;
    write_safetensors(tmp / "optimizer.safetensors", optimizer_entries(ck, weights.num_params()), meta);
    Json state = Json::object();
    state.set("global_step", ck.state.global_step)
        .set("log_loss_sum", ck.state.log_loss_sum)
        .set("log_steps", ck.state.log_steps)
        .set("log_accuracy_sum", ck.state.log_accuracy_sum)
        .set("log_micro_batches", ck.state.log_micro_batches)
        .set("num_tokens", ck.state.num_tokens)
        .set("train_seconds", ck.state.train_seconds)
        .set("micro_batches_per_step", ck.state.micro_batches_per_step);
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
  const SafetensorsFile opt = SafetensorsFile::open(dir / "optimizer.safetensors");
  read_optimizer(opt, weights.num_params(), ck);
  if (weights.lora) to_lora_order(opt, *weights.lora, ck);
  const std::string state_path = (dir / "trainer_state.json").string();
  const json::Document doc(state_path, json::read_text_file(state_path));
  const json::Object s = doc.object();
  ck.state.global_step = s.integer("global_step");
  ck.state.log_loss_sum = s.number("log_loss_sum");
  ck.state.log_steps = s.integer("log_steps");
  ck.state.log_accuracy_sum = s.number("log_accuracy_sum");
  ck.state.log_micro_batches = s.integer("log_micro_batches");
  ck.state.num_tokens = s.integer("num_tokens");
  ck.state.train_seconds = s.number("train_seconds");
  ck.state.micro_batches_per_step = s.opt_integer("micro_batches_per_step").value_or(0);
  return ck;
}

}  // namespace qsft
