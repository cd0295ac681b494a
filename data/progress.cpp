#include "data/progress.h"

#include <cstdio>

namespace qsft {

DataProgress::DataProgress(std::string label, uint64_t total, bool enabled)
    : label_(std::move(label)),
      total_(total),
      enabled_(enabled),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

void DataProgress::set(uint64_t done) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  draw(done);
}

void DataProgress::finish() {
  if (!enabled_) return;
  draw(total_);
  std::fputc('\n', stderr);
}

void DataProgress::draw(uint64_t done) {
  constexpr int kWidth = 30;
  const double fraction = total_ ? double(done) / double(total_) : 1.0;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string bar(kWidth, ' ');
  for (int i = 0; i < int(fraction * kWidth) && i < kWidth; ++i) bar[size_t(i)] = '=';
  std::fprintf(stderr, "\r%s [%s] %3d%%  %.1f MB  %.1f MB/s", label_.c_str(), bar.c_str(), int(fraction * 100),
               double(done) / 1e6, seconds > 0 ? double(done) / 1e6 / seconds : 0.0);
  std::fflush(stderr);
}

}  // namespace qsft
