#include "tools/generate_setup.h"

#include <cstdio>

namespace qsft::cli {

namespace {

std::unique_ptr<Ops> make_ops(const std::string& device) {
  if (device == "cpu") return make_cpu_ops();
  if (device == "cuda") return make_cuda_ops();
  if (device == "auto") return cuda_available() ? make_cuda_ops() : make_cpu_ops();
  throw UsageError("--device: \"" + device + "\" is not auto, cpu or cuda");
}

double number(const Flags& f, const std::string& name) {
  const std::string v = f.get(name);
  try {
    size_t used = 0;
    const double x = std::stod(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  throw UsageError("--" + name + ": \"" + v + "\" is not a number");
}

int64_t integer(const Flags& f, const std::string& name) {
  const double x = number(f, name);
  if (x != double(int64_t(x))) throw UsageError("--" + name + ": \"" + f.get(name) + "\" is not an integer");
  return int64_t(x);
}

}  // namespace

GenerateSetup GenerateSetup::from_flags(const Flags& f) {
  if (!f.has("model")) throw UsageError("--model is required");
  GenerateSetup s{f.get("model"), make_ops(f.get("device", "auto")), PromptEncoder(f.get("model"), f.get("chat-format")),
                  {}, {}, false};
  SamplingConfig& c = s.sampling = load_generation_config(s.model_dir);
  const int32_t eos = s.prompts.tokenizer().eos_id();
  if (eos >= 0 && !c.is_eos(eos)) c.eos_ids.push_back(eos);
  if (f.has("ignore-eos")) c.eos_ids.clear();
  if (f.has("greedy") && f.has("sample")) throw UsageError("--greedy and --sample exclude each other");
  if (f.has("greedy")) c.do_sample = false;
  if (f.has("sample")) c.do_sample = true;
  if (f.has("max-new-tokens")) c.max_new_tokens = integer(f, "max-new-tokens");
  if (f.has("temperature")) c.temperature = float(number(f, "temperature"));
  if (f.has("top-k")) c.top_k = integer(f, "top-k");
  if (f.has("top-p")) c.top_p = float(number(f, "top-p"));
  if (f.has("min-p")) c.min_p = float(number(f, "min-p"));
  if (f.has("repetition-penalty")) c.repetition_penalty = float(number(f, "repetition-penalty"));
  if (f.has("seed")) c.seed = uint64_t(integer(f, "seed"));
  check_sampling(c, "decoding options");
  if (f.has("batch-size")) s.gen.slots = integer(f, "batch-size");
  if (s.gen.slots < 1) throw UsageError("--batch-size must be >= 1");
  s.gen.capacity = f.has("max-length") ? integer(f, "max-length") : 0;
  if (f.has("max-length") && s.gen.capacity < 2) throw UsageError("--max-length must be >= 2");
  s.merge = f.has("merge");
  return s;
}

std::unique_ptr<Qwen2Model> GenerateSetup::load(const std::string& adapter) const {
  return load_generation_model(*ops, {model_dir, adapter, merge}, gen);
}

void TextStream::add(int32_t token) {
  ids_.push_back(token);
  const std::string t = setup_.prompts.text(ids_);
  // Decoding replaces an incomplete UTF-8 sequence by U+FFFD: hold a trailing one back until it completes.
  const std::string_view replacement = "\xEF\xBF\xBD";
  size_t ready = t.size();
  if (t.size() >= replacement.size() && t.compare(t.size() - 3, 3, replacement) == 0) ready -= 3;
  if (ready > printed_) {
    std::fwrite(t.data() + printed_, 1, ready - printed_, out_);
    std::fflush(out_);
    printed_ = ready;
  }
}

void TextStream::finish() {
  const std::string t = setup_.prompts.text(ids_);
  if (t.size() > printed_) std::fwrite(t.data() + printed_, 1, t.size() - printed_, out_);
  printed_ = t.size();
  std::fflush(out_);
}

}  // namespace qsft::cli
