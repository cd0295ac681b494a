// What the trainer shows while it runs: on a terminal a progress bar (step, loss, tokens/s, ETA) redrawn in place,
// with log lines printed above it; otherwise plain log lines only.
#pragma once
#include <cstdint>
#include <string>

namespace qsft {

class Progress {
 public:
  Progress(int64_t total_steps, bool enabled);
  ~Progress();
  void update(int64_t step, double loss, double tokens_per_second, double elapsed_seconds);
  void line(const std::string& text);  // a log line (above the bar on a terminal)

 private:
  void clear_bar();
  int64_t total_;
  bool enabled_, tty_;
  bool bar_shown_ = false;
  std::string last_bar_;
};

}  // namespace qsft
