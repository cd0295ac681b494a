#include "engine/generate/generator.h"

#include <algorithm>
#include <string>

#include "kernels/rng.h"

namespace qsft {

ModelOptions generation_model_options(const GeneratorOptions& o) {
  ModelOptions m;
  m.max_tokens = std::max(o.prefill(), o.slots);
  m.recompute = true;  // one layer's activations: the forward never keeps them for a backward
  return m;
}

void Generator::carve(Arena& a, DType act) {
  cache_.carve(a, cfg_, opts_.slots, opts_.capacity, act);
  rows_ = a.take(DType::I32, {opts_.slots});
  slot_ = a.take(DType::I32, {opts_.slots});
  len_ = a.take(DType::I32, {opts_.slots});
  hidden_ = a.take(act, {opts_.slots, cfg_.hidden_size});
  logits_ = a.take(DType::F32, {opts_.slots, cfg_.vocab_size});
  lse_ = a.take(DType::F32, {int64_t(cfg_.num_attention_heads) * opts_.prefill()});
}

size_t Generator::plan_bytes(const Qwen2Config& cfg, const GeneratorOptions& o, DType act) {
  Arena measure;
  KvCache cache;
  cache.carve(measure, cfg, o.slots, o.capacity, act);
  const int64_t n = cfg.num_attention_heads;
  for (int i = 0; i < 3; ++i) measure.take(DType::I32, {o.slots});
  measure.take(act, {o.slots, cfg.hidden_size});
  measure.take(DType::F32, {o.slots, cfg.vocab_size});
  measure.take(DType::F32, {n * o.prefill()});
  return measure.used();
}

Generator::Generator(Ops& ops, Qwen2Model& model, const GeneratorOptions& o)
    : ops_(ops), model_(model), cfg_(model.config()), opts_(o) {
  QSFT_CHECK(o.slots >= 1 && o.capacity >= 2, "generation needs a slot and room for a prompt and a token");
  arena_ = Arena(ops, plan_bytes(cfg_, o, model.activation_dtype()));
  carve(arena_, model.activation_dtype());
  host_logits_.resize(size_t(o.slots * cfg_.vocab_size));
}

void Generator::upload(Tensor& dst, const std::vector<int32_t>& host) {
  ops_.copy_to_device(dst.data, host.data(), host.size() * sizeof(int32_t));
}

// One packed forward of the new prompts; each layer's keys and values are copied into the prompts' slots.
void Generator::prefill(const std::vector<Sequence>& seqs) {
  std::vector<int32_t> ids, positions, cu{0}, last;
  int max_len = 0;
  for (const Sequence& s : seqs) {
    const int32_t L = int32_t(s.tokens.size());
    ids.insert(ids.end(), s.tokens.begin(), s.tokens.end());
    for (int32_t p = 0; p < L; ++p) positions.push_back(p);
    cu.push_back(cu.back() + L);
    last.push_back(cu.back() - 1);
    max_len = std::max(max_len, int(L));
  }
  const std::vector<int32_t> targets(ids.size(), -100);
  const int64_t T = int64_t(ids.size()), n = cfg_.num_attention_heads;
  const AttentionFn attend = [&](int l, const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& seq,
                                 Tensor& attn, Tensor&) {
    for (size_t i = 0; i < seqs.size(); ++i) {
      const int64_t L = cu[i + 1] - cu[i];
      Tensor kd = KvCache::positions(cache_.k[size_t(l)], seqs[i].slot, L);
      Tensor vd = KvCache::positions(cache_.v[size_t(l)], seqs[i].slot, L);
      ops_.copy(kd, k.rows(cu[i], cu[i + 1]));
      ops_.copy(vd, v.rows(cu[i], cu[i + 1]));
    }
    Tensor lse(lse_.data, DType::F32, {n, T}, lse_.device);
    ops_.attention_fwd(q, k, v, seq, attn, lse);
  };
  model_.forward_hidden({ids, targets, positions, cu, max_len, 0}, attend);
  upload(rows_, last);
  const int64_t R = int64_t(seqs.size());
  Tensor rows = rows_.rows(0, R), h = hidden_.rows(0, R), logits = logits_.rows(0, R);
  model_.logits_of_rows(rows, h, logits);
}

// One token for every sequence: its last token at position len - 1, attention over its slot.
void Generator::decode(const std::vector<Sequence>& seqs) {
  std::vector<int32_t> ids, positions, cu{0}, slots, lens, rows;
  int max_len = 0;
  for (const Sequence& s : seqs) {
    const int32_t L = int32_t(s.tokens.size());
    ids.push_back(s.tokens.back());
    positions.push_back(L - 1);
    cu.push_back(cu.back() + 1);
    slots.push_back(int32_t(s.slot));
    lens.push_back(L);
    rows.push_back(int32_t(rows.size()));
    max_len = std::max(max_len, int(L));  // dynamic RoPE sizes its table by the longest sequence
  }
  const std::vector<int32_t> targets(ids.size(), -100);
  const int64_t B = int64_t(seqs.size());
  upload(slot_, slots);
  upload(len_, lens);
  upload(rows_, rows);
  Tensor slot = slot_.rows(0, B), len = len_.rows(0, B);
  const AttentionFn attend = [&](int l, const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout&,
                                 Tensor& attn, Tensor&) {
    ops_.decode_attention(q, k, v, cache_.k[size_t(l)], cache_.v[size_t(l)], slot, len, attn);
  };
  model_.forward_hidden({ids, targets, positions, cu, max_len, 0}, attend);
  Tensor r = rows_.rows(0, B), h = hidden_.rows(0, B), logits = logits_.rows(0, B);
  model_.logits_of_rows(r, h, logits);
}

bool Generator::append(Sequence& s, int32_t t, const SamplingConfig& c, Completion& out, const TokenFn& on_token) {
  s.tokens.push_back(t);
  out.tokens.push_back(t);
  ++s.generated;
  if (on_token) on_token(s.prompt, t);
  out.stopped = c.is_eos(t);
  return out.stopped || s.generated >= c.max_new_tokens || int64_t(s.tokens.size()) >= opts_.capacity;
}

std::vector<Completion> Generator::generate(const std::vector<std::vector<int32_t>>& prompts, const SamplingConfig& c,
                                            const TokenFn& on_token) {
  const int64_t fits = std::min(opts_.capacity - 1, opts_.prefill());
  for (size_t i = 0; i < prompts.size(); ++i)
    if (prompts[i].empty() || int64_t(prompts[i].size()) > fits)
      throw InputError("prompt " + std::to_string(i + 1) + " has " + std::to_string(prompts[i].size()) +
                       " tokens; generation takes 1 to " + std::to_string(fits) + " (raise --max-length)");
  std::vector<Completion> out(prompts.size());
  std::vector<Sequence> running;
  std::vector<int64_t> free_slots;
  for (int64_t s = opts_.slots - 1; s >= 0; --s) free_slots.push_back(s);
  const size_t V = size_t(cfg_.vocab_size);
  // Reads the logits of rows [0, seqs.size()), chooses each sequence's token (rows in parallel: the choice is a
  // pure function of the row, the sequence and the seed); the finished ones leave.
  auto advance = [&](std::vector<Sequence>& seqs) {
    const int64_t R = int64_t(seqs.size());
    ops_.copy_to_host(host_logits_.data(), logits_.data, size_t(R) * V * sizeof(float));
    std::vector<int32_t> picked(seqs.size());
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < R; ++i) {
      const Sequence& q = seqs[size_t(i)];
      picked[size_t(i)] = next_token(std::span(host_logits_.data() + size_t(i) * V, V), q.tokens, c,
                                     rng::hash(c.seed, q.prompt), uint64_t(q.generated));
    }
    std::vector<Sequence> kept;
    for (size_t i = 0; i < seqs.size(); ++i) {
      if (append(seqs[i], picked[i], c, out[seqs[i].prompt], on_token)) {
        free_slots.push_back(seqs[i].slot);
      } else {
        kept.push_back(std::move(seqs[i]));
      }
    }
    seqs = std::move(kept);
  };
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
      advance(fresh);
    }
    if (!running.empty()) {
      decode(running);
      advance(running);
    }
    for (Sequence& s : fresh) running.push_back(std::move(s));
  }
  return out;
}

}  // namespace qsft
