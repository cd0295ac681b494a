#include "engine/generate/generator.h"

#include <algorithm>
#include <string>

#include "kernels/rng.h"

namespace qsft {

ModelOptions generation_model_options(const GeneratorOptions& o) {
  ModelOptions m;
  m.max_tokens = std::max(o.prefill(), o.slots);
  m.recompute = true;  // one layer's activations: the forward never keeps them for a backward
  m.inference = true;  // two residual streams, no backward scratch, no adapter gradients
  return m;
}

// Rows of one forward: the largest prefill or extend, or one decode row per slot.
static int64_t step_rows(const GeneratorOptions& o) { return std::max(o.prefill(), o.slots); }

void Generator::carve(Arena& a, DType act) {
  cache_.carve(a, cfg_, opts_.slots, opts_.capacity, act);
  rows_ = a.take(DType::I32, {step_rows(opts_)});
  slot_ = a.take(DType::I32, {step_rows(opts_)});
  len_ = a.take(DType::I32, {step_rows(opts_)});
  hidden_ = a.take(act, {opts_.slots, cfg_.hidden_size});
  logits_ = a.take(DType::F32, {opts_.slots, cfg_.vocab_size});
  picked_ = a.take(DType::I32, {opts_.slots});
}

size_t Generator::plan_bytes(const Qwen2Config& cfg, const GeneratorOptions& o, DType act) {
  Arena measure;
  KvCache cache;
  cache.carve(measure, cfg, o.slots, o.capacity, act);
  for (int i = 0; i < 3; ++i) measure.take(DType::I32, {step_rows(o)});
  measure.take(act, {o.slots, cfg.hidden_size});
  measure.take(DType::F32, {o.slots, cfg.vocab_size});
  measure.take(DType::I32, {o.slots});
  return measure.used();
}

Generator::Generator(Ops& ops, Qwen2Model& model, const GeneratorOptions& o)
    : ops_(ops), model_(model), cfg_(model.config()), opts_(o), graphs_(ops, o.decode_graphs) {
  QSFT_CHECK(o.slots >= 1 && o.capacity >= 2, "generation needs a slot and room for a prompt and a token");
  arena_ = Arena(ops, plan_bytes(cfg_, o, model.activation_dtype()));
  carve(arena_, model.activation_dtype());
  host_logits_.resize(size_t(o.slots * cfg_.vocab_size));
}

void Generator::upload(Tensor& dst, const std::vector<int32_t>& host) {
  ops_.copy_to_device(dst.data, host.data(), host.size() * sizeof(int32_t));
}

// One packed forward of the new prompts; each layer's keys and values are copied into the prompts' slots.
void Generator::prefill(std::vector<Sequence>& seqs) {
  std::vector<int32_t> ids, positions, cu{0}, last;
  int max_len = 0;
  for (Sequence& s : seqs) {
    const int32_t L = int32_t(s.tokens.size());
    ids.insert(ids.end(), s.tokens.begin(), s.tokens.end());
    for (int32_t p = 0; p < L; ++p) positions.push_back(p);
    cu.push_back(cu.back() + L);
    last.push_back(cu.back() - 1);
    max_len = std::max(max_len, int(L));
    s.cached = L;
  }
  const std::vector<int32_t> targets(ids.size(), -100);
  const AttentionFn attend = [&](int l, const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& seq,
                                 Tensor& attn, Tensor& lse) {
    for (size_t i = 0; i < seqs.size(); ++i) {
      const int64_t L = cu[i + 1] - cu[i];
      Tensor kd = KvCache::positions(cache_.k[size_t(l)], seqs[i].slot, L);
      Tensor vd = KvCache::positions(cache_.v[size_t(l)], seqs[i].slot, L);
      ops_.copy(kd, k.rows(cu[i], cu[i + 1]));
      ops_.copy(vd, v.rows(cu[i], cu[i + 1]));
    }
    ops_.attention_fwd(q, k, v, seq, attn, lse);
  };
  model_.forward_hidden({ids, targets, positions, cu, max_len, 0}, attend);
  upload(rows_, last);
  const int64_t R = int64_t(seqs.size());
  Tensor rows = rows_.rows(0, R), h = hidden_.rows(0, R), logits = logits_.rows(0, R);
  model_.logits_of_rows(rows, h, logits);
}

// Row p of a sequence (its token at position p, p >= cached) attends over its slot's positions [0, p]: decode
// attention with len = p + 1; a row's key and value land in the cache before any row reads it.
// The inputs go to the device first (fixed buffers), then the device work: a decode step's (one row per sequence)
// as a graph (decode_graphs.h).
void Generator::extend(std::vector<Sequence>& seqs) {
  std::vector<int32_t> ids, positions, cu{0}, slots, lens, last;
  int max_len = 0;
  for (Sequence& s : seqs) {
    const int32_t L = int32_t(s.tokens.size());
    for (int32_t p = int32_t(s.cached); p < L; ++p) {
      ids.push_back(s.tokens[size_t(p)]);
      positions.push_back(p);
      cu.push_back(cu.back() + 1);
      slots.push_back(int32_t(s.slot));
      lens.push_back(p + 1);
    }
    last.push_back(int32_t(ids.size()) - 1);
    max_len = std::max(max_len, int(L));  // dynamic RoPE sizes its table by the longest sequence
    s.cached = L;
  }
  const std::vector<int32_t> targets(ids.size(), -100);
  const int64_t T = int64_t(ids.size()), R = int64_t(seqs.size());
  upload(slot_, slots);
  upload(len_, lens);
  upload(rows_, last);
  model_.stage({ids, targets, positions, cu, max_len, 0});
  Tensor slot = slot_.rows(0, T), len = len_.rows(0, T);
  const AttentionFn attend = [&](int l, const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout&,
                                 Tensor& attn, Tensor&) {
    ops_.decode_attention(q, k, v, cache_.k[size_t(l)], cache_.v[size_t(l)], slot, len, attn);
  };
  Tensor r = rows_.rows(0, R), h = hidden_.rows(0, R), logits = logits_.rows(0, R);
  const auto step = [&] {
    model_.forward_staged(attend);
    model_.logits_of_rows(r, h, logits);
  };
  if (T == R) return graphs_.run(R, step);
  step();
}

bool Generator::append(Sequence& s, int32_t t, const SamplingConfig& c, Completion& out, const TokenFn& on_token) {
  s.tokens.push_back(t);
  out.tokens.push_back(t);
  ++s.generated;
  if (on_token) on_token(s.prompt, t);
  out.stopped = c.is_eos(t);
  return out.stopped || s.generated >= c.max_new_tokens || int64_t(s.tokens.size()) >= opts_.capacity;
}

// Greedy without a repetition penalty is the plain argmax (next_token's choice): on the device, one id per row
// comes back instead of the row's logits. Else on the host: the choice is a pure function of the row, the sequence
// and the seed, rows in parallel.
std::vector<int32_t> Generator::choose(const std::vector<Sequence>& seqs, const SamplingConfig& c) {
  const int64_t R = int64_t(seqs.size());
  std::vector<int32_t> picked(seqs.size());
  if (!c.do_sample && c.repetition_penalty == 1.0f) {
    Tensor ids = picked_.rows(0, R);
    ops_.argmax_rows(logits_.rows(0, R), ids);
    ops_.copy_to_host(picked.data(), ids.data, picked.size() * sizeof(int32_t));
    return picked;
  }
  const size_t V = size_t(cfg_.vocab_size);
  ops_.copy_to_host(host_logits_.data(), logits_.data, size_t(R) * V * sizeof(float));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < R; ++i) {
    const Sequence& q = seqs[size_t(i)];
    picked[size_t(i)] = next_token(std::span(host_logits_.data() + size_t(i) * V, V), q.tokens, c,
                                   rng::hash(c.seed, q.prompt), uint64_t(q.generated));
  }
  return picked;
}

void Generator::advance(std::vector<Sequence>& seqs, const SamplingConfig& c, const TokenFn& on_token,
                        std::vector<Completion>& out, std::vector<int64_t>& freed) {
  const std::vector<int32_t> picked = choose(seqs, c);
  std::vector<Sequence> kept;
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (append(seqs[i], picked[i], c, out[seqs[i].prompt], on_token)) {
      freed.push_back(seqs[i].slot);
    } else {
      kept.push_back(std::move(seqs[i]));
    }
  }
  seqs = std::move(kept);
}

void Generator::check_fits(const std::vector<int32_t>& prompt, size_t index) const {
  const int64_t fits = std::min(opts_.capacity - 1, opts_.prefill());
  if (prompt.empty() || int64_t(prompt.size()) > fits)
    throw InputError("prompt " + std::to_string(index + 1) + " has " + std::to_string(prompt.size()) +
                     " tokens; generation takes 1 to " + std::to_string(fits) + " (raise --max-length)");
}

std::vector<Completion> Generator::generate(const std::vector<std::vector<int32_t>>& prompts, const SamplingConfig& c,
                                            const TokenFn& on_token) {
  for (size_t i = 0; i < prompts.size(); ++i) check_fits(prompts[i], i);
  held_.clear();
  std::vector<Completion> out(prompts.size());
  std::vector<Sequence> running;
  std::vector<int64_t> free_slots;
  for (int64_t s = opts_.slots - 1; s >= 0; --s) free_slots.push_back(s);
  size_t next = 0;
  while (next < prompts.size() || !running.empty()) {
    std::vector<Sequence> fresh;
    int64_t tokens = 0;
    while (next < prompts.size() && !free_slots.empty() &&
           tokens + int64_t(prompts[next].size()) <= opts_.prefill()) {
      tokens += int64_t(prompts[next].size());
      fresh.push_back({next, free_slots.back(), prompts[next]});
      free_slots.pop_back();
      ++next;
    }
    if (!fresh.empty()) {
      prefill(fresh);
      advance(fresh, c, on_token, out, free_slots);
    }
    if (!running.empty()) {
      extend(running);
      advance(running, c, on_token, out, free_slots);
    }
    for (Sequence& s : fresh) running.push_back(std::move(s));
  }
  return out;
}

// Only an extension of what the slot holds is free: a chat template that renders earlier turns differently once
// a new one follows (Qwen3 drops the <think> block of earlier answers) shares a shorter prefix, and everything after
// the first difference is recomputed (with no shared prefix: a full prefill, as generate() does).
Completion Generator::converse(const std::vector<int32_t>& conversation, const SamplingConfig& c,
                               const TokenFn& on_token) {
  check_fits(conversation, 0);
  const auto differ = std::mismatch(held_.begin(), held_.end(), conversation.begin(), conversation.end());
  // At least the last token is an input: its logits choose the first new token.
  const int64_t shared = std::min(int64_t(differ.first - held_.begin()), int64_t(conversation.size()) - 1);
  held_.clear();  // the slot is rewritten from `shared` on; nothing held if this turn fails
  std::vector<Sequence> seqs{{0, 0, conversation, shared}};
  std::vector<Completion> out(1);
  std::vector<int64_t> freed;
  out[0].reused = shared;
  if (shared == 0) {
    prefill(seqs);
  } else {
    extend(seqs);
  }
  for (advance(seqs, c, on_token, out, freed); !seqs.empty(); advance(seqs, c, on_token, out, freed)) extend(seqs);
  held_ = conversation;
  held_.insert(held_.end(), out[0].tokens.begin(), out[0].tokens.end() - 1);  // the last token was never an input
  return out[0];
}

}  // namespace qsft
