// Training's generation_prompts: at each evaluation the prompts are answered by the model as trained so far (greedy,
// stopping at eos, at most 128 new tokens or generation_config.json's max_new_tokens when lower) and appended to
// output_dir/samples.jsonl, one line per prompt: {"step", "index", "prompt", "completion"}, and as TensorBoard text
// (output_dir/samples/, tag samples/prompt_<index>: the run "samples" next to the scalars). Generation reads the
// LoRA parameters and overwrites only activations, so the training that follows is unchanged.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/generate/generator.h"
#include "engine/generate/prompts.h"
#include "engine/train/tensorboard.h"

namespace qsft {

class TrainingSamples {
 public:
  // Reads and encodes the prompts now, so a bad file stops the run before its first step. max_tokens: the
  // tokens the model's activations are planned for (a prompt must fit in one forward).
  TrainingSamples(const std::string& prompts_file, const std::string& model_dir, const std::string& chat_format,
                  int64_t max_tokens);
  ~TrainingSamples();
  void answer(Ops& ops, Qwen2Model& model, int64_t step, const std::filesystem::path& out_dir);
  // The device bytes of the generator answer() makes (its KV cache and step tensors), activations of dtype act.
  size_t device_bytes(const Qwen2Config& cfg, DType act) const { return Generator::plan_bytes(cfg, opts_, act); }

 private:
  PromptEncoder enc_;
  std::vector<std::vector<int32_t>> prompts_;
  SamplingConfig sampling_;
  GeneratorOptions opts_;
  std::unique_ptr<Generator> gen_;  // made at the first evaluation (its KV cache stays for the next ones)
  std::unique_ptr<TensorBoardWriter> tensorboard_;
};

}  // namespace qsft
