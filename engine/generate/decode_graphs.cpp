#include "engine/generate/decode_graphs.h"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

namespace qsft {

static bool graphs_allowed_by_env() {
  const char* v = std::getenv("QSFT_DECODE_GRAPHS");
  return !(v && std::string(v) == "0");
}

DecodeGraphs::DecodeGraphs(Ops& ops, bool wanted)
    : ops_(ops), enabled_(wanted && ops.can_capture() && graphs_allowed_by_env()) {}

void DecodeGraphs::run(int64_t rows, const std::function<void()>& step) {
  if (!enabled_) return step();
  const auto it = graphs_.find(rows);
  if (it == graphs_.end()) {  // the warm-up
    graphs_[rows] = nullptr;
    return step();
  }
  if (!it->second) return record(rows, step);
  if (ops_.replay(*it->second)) {
    ++replays_;
    return;
  }
  it->second.reset();  // stale: this eager step is the new warm-up
  step();
}

void DecodeGraphs::record(int64_t rows, const std::function<void()>& step) {
  std::string why;
  try {
    ops_.begin_capture();
    step();
  } catch (const std::exception& e) {
    why = e.what();
  }
  std::unique_ptr<Ops::Graph> g = ops_.end_capture(why.empty() ? &why : nullptr);
  if (!g || !why.empty()) {
    std::fprintf(stderr, "note: decode steps run without CUDA graphs (recording one failed: %s)\n", why.c_str());
    enabled_ = false;
    graphs_.clear();
    return step();
  }
  graphs_[rows] = std::move(g);
  QSFT_CHECK(ops_.replay(*graphs_[rows]), "a graph is stale right after its recording");
  ++replays_;
}

}  // namespace qsft
