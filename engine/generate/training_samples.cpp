#include "engine/generate/training_samples.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "engine/base/json_writer.h"

namespace qsft {

constexpr int64_t kMaxSampleTokens = 128;

TrainingSamples::TrainingSamples(const std::string& prompts_file, const std::string& model_dir,
                                 const std::string& chat_format, int64_t max_tokens)
    : enc_(model_dir, chat_format), prompts_(read_prompts(prompts_file, enc_)) {
  sampling_ = load_generation_config(model_dir);
  sampling_.do_sample = false;
  sampling_.max_new_tokens = std::min(sampling_.max_new_tokens, kMaxSampleTokens);
  const int32_t eos = enc_.tokenizer().eos_id();
  if (eos >= 0 && !sampling_.is_eos(eos)) sampling_.eos_ids.push_back(eos);
  size_t longest = 0;
  for (const auto& p : prompts_) longest = std::max(longest, p.size());
  if (int64_t(longest) > max_tokens)
    throw input_error(prompts_file, "a prompt has " + std::to_string(longest) + " tokens, more than the " +
                                        std::to_string(max_tokens) + " of one micro-batch");
  opts_.slots = std::min<int64_t>(int64_t(prompts_.size()), 8);
  opts_.capacity = int64_t(longest) + sampling_.max_new_tokens;
  opts_.prefill_tokens = std::min(max_tokens, opts_.capacity);
}

TrainingSamples::~TrainingSamples() = default;

void TrainingSamples::answer(Ops& ops, Qwen2Model& model, int64_t step, const std::filesystem::path& out_dir) {
  if (!gen_) gen_ = std::make_unique<Generator>(ops, model, opts_);
  if (!tensorboard_) {
    std::filesystem::create_directories(out_dir / "samples");
    tensorboard_ = std::make_unique<TensorBoardWriter>(out_dir / "samples");
  }
  const std::vector<Completion> done = gen_->generate(prompts_, sampling_);
  std::string lines;
  for (size_t i = 0; i < done.size(); ++i) {
    const std::string prompt = enc_.tokenizer().decode(prompts_[i], false), completion = enc_.text(done[i].tokens);
    Json j = Json::object();
    j.set("step", step);
    j.set("index", int64_t(i));
    j.set("prompt", prompt);
    j.set("completion", completion);
    lines += j.dump() + "\n";
    tensorboard_->text("samples/prompt_" + std::to_string(i),
                       "```\n" + prompt + "\n```\n\n```\n" + completion + "\n```", step);
  }
  const std::string path = (out_dir / "samples.jsonl").string();
  std::FILE* f = std::fopen(path.c_str(), "a");
  const bool ok = f && std::fwrite(lines.data(), 1, lines.size(), f) == lines.size() && std::fflush(f) == 0 &&
                  ::fsync(fileno(f)) == 0;
  if (f) std::fclose(f);
  if (!ok) throw input_error(path, "cannot be written");
}

}  // namespace qsft
