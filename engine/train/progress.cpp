#include "engine/train/progress.h"

#include <unistd.h>

#include <cstdio>

namespace qsft {

Progress::Progress(int64_t total_steps, bool enabled)
    : total_(total_steps), enabled_(enabled), tty_(enabled && isatty(fileno(stderr))) {}

Progress::~Progress() {
  if (bar_shown_) std::fputc('\n', stderr);
}

void Progress::clear_bar() {
  if (bar_shown_) std::fprintf(stderr, "\r\033[K");
}

void Progress::update(int64_t step, double loss, double tokens_per_second, double elapsed) {
  if (!tty_) return;
  constexpr int kWidth = 30;
  const int filled = total_ > 0 ? int(kWidth * step / total_) : 0;
  const double eta = step > 0 ? elapsed / double(step) * double(total_ - step) : 0;
  char buf[256];
  std::snprintf(buf, sizeof buf, "step %lld/%lld [%-*s] loss %.4f | %.0f tok/s | ETA %dm%02ds", (long long)step,
                (long long)total_, kWidth, std::string(size_t(filled), '=').c_str(), loss, tokens_per_second,
                int(eta) / 60, int(eta) % 60);
  clear_bar();
  std::fputs(buf, stderr);
  std::fflush(stderr);
  bar_shown_ = true;
  last_bar_ = buf;
}

void Progress::line(const std::string& text) {
  if (!enabled_) return;
  clear_bar();
  std::fprintf(stderr, "%s\n", text.c_str());
  if (bar_shown_) std::fputs(last_bar_.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace qsft
