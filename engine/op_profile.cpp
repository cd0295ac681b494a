#include "engine/op_profile.h"

#include <algorithm>
#include <cstdio>

namespace qsft {

const char* op_family_name(OpFamily f) {
  static const char* const names[kNumOpFamilies] = {"linear (frozen)", "gemm (LoRA)",    "attention", "rope",
                                                    "rmsnorm",         "swiglu",         "embedding", "lm_head+CE",
                                                    "elementwise",     "dropout (LoRA)", "optimizer", "copy/zero"};
  return names[size_t(f)];
}

int OpProfile::family_slot(OpFamily f) {
  ++calls_[size_t(f)];
  return int(f);
}

int OpProfile::shape_slot(const GemmWork& w) {
  std::string key = w.op;
  int64_t dims[3] = {w.M, w.N, w.K};
  for (int64_t& d : dims) {
    if (tokens_ > 0 && d == tokens_) d = kTokens;
    key += ' ';
    key += d == kTokens ? std::string("T") : std::to_string(d);
  }
  auto [it, added] = shape_index_.try_emplace(key, int(shapes_.size()));
  if (added) {
    shapes_.push_back({w.op, {dims[0], dims[1], dims[2]}, kNumOpFamilies + int(shapes_.size())});
    calls_.push_back(0);
  }
  Shape& s = shapes_[size_t(it->second)];
  ++calls_[size_t(s.slot)];
  s.flops += 2.0 * double(w.M) * double(w.N) * double(w.K);
  s.bytes += w.bytes;
  return s.slot;
}

void OpProfile::set_tokens(int64_t T) {
  tokens_ = T;
  tokens_sum_ += double(T);
  tokens_batches_ += 1;
}

void OpProfile::reset(const std::vector<double>& ms) {
  baseline_ = ms;
  std::fill(calls_.begin(), calls_.end(), 0);
  for (Shape& s : shapes_) s.flops = s.bytes = 0;
  tokens_sum_ = tokens_batches_ = 0;
}

double OpProfile::window_ms(const std::vector<double>& ms, int slot) const {
  const size_t i = size_t(slot);
  return (i < ms.size() ? ms[i] : 0.0) - (i < baseline_.size() ? baseline_[i] : 0.0);
}

std::string OpProfile::report(const std::vector<double>& ms) const {
  double total = 0;
  std::string out = families(ms, &total);
  return out + shapes(ms, total);
}

std::string OpProfile::families(const std::vector<double>& ms, double* total) const {
  double t = 0;
  for (int i = 0; i < kNumOpFamilies; ++i) t += window_ms(ms, i);
  std::string out = "op family            calls      ms   share\n";
  for (int i = 0; i < kNumOpFamilies; ++i) {
    if (!calls_[size_t(i)]) continue;
    const double m = window_ms(ms, i);
    char line[96];
    std::snprintf(line, sizeof line, "%-18s %7lld %9.1f %6.1f%%\n", op_family_name(OpFamily(i)),
                  (long long)calls_[size_t(i)], m, t > 0 ? 100.0 * m / t : 0.0);
    out += line;
  }
  char line[64];
  std::snprintf(line, sizeof line, "%-18s %7s %9.1f\n", "total (in ops)", "", t);
  *total = t;
  return out + line;
}

// The longest GEMM shapes with their rates: TFLOP/s = the calls' 2 M N K over their time, GB/s = the least bytes
// moved over it, to hold against the GEMM peak (compute-bound shapes) or the copy bandwidth (the skinny LoRA ones).
std::string OpProfile::shapes(const std::vector<double>& ms, double total) const {
  constexpr size_t kRows = 16;
  std::vector<const Shape*> seen;
  for (const Shape& s : shapes_)
    if (calls_[size_t(s.slot)]) seen.push_back(&s);
  if (seen.empty()) return "";
  std::stable_sort(seen.begin(), seen.end(),
                   [&](const Shape* a, const Shape* b) { return window_ms(ms, a->slot) > window_ms(ms, b->slot); });
  std::string out = "GEMM shapes by time (" + std::to_string(std::min(kRows, seen.size())) + " longest of " +
                    std::to_string(seen.size()) +
                    "; FLOPs 2 M N K, bytes the least moved: operands read once, C written once, read too when "
                    "accumulated";
  if (tokens_batches_ > 0) {
    out += "; T: a micro-batch's tokens, ";
    out += std::to_string(int64_t(tokens_sum_ / tokens_batches_ + 0.5));
    out += " on average";
  }
  out += ")\n";
  char line[160];
  std::snprintf(line, sizeof line, "%-18s %7s %7s %7s %7s %9s %6s %8s %8s\n", "op", "M", "N", "K", "calls", "ms",
                "share", "TFLOP/s", "GB/s");
  out += line;
  for (size_t i = 0; i < std::min(kRows, seen.size()); ++i) {
    const Shape& s = *seen[i];
    const double m = window_ms(ms, s.slot), sec = m > 0 ? m * 1e-3 : 0.0;
    std::string dims[3];
    for (int d = 0; d < 3; ++d) dims[d] = s.dims[d] == kTokens ? "T" : std::to_string(s.dims[d]);
    std::snprintf(line, sizeof line, "%-18s %7s %7s %7s %7lld %9.1f %5.1f%% %8.1f %8.0f\n", s.op, dims[0].c_str(),
                  dims[1].c_str(), dims[2].c_str(), (long long)calls_[size_t(s.slot)], m,
                  total > 0 ? 100.0 * m / total : 0.0, sec > 0 ? s.flops / sec * 1e-12 : 0.0,
                  sec > 0 ? s.bytes / sec * 1e-9 : 0.0);
    out += line;
  }
  return out;
}

}  // namespace qsft
