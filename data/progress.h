// A progress bar on stderr for long work (bytes of input), redrawn at most ten times a second.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace qsft {

class DataProgress {
 public:
  DataProgress(std::string label, uint64_t total, bool enabled);
  void set(uint64_t done);  // absolute amount done
  void finish();            // the final line (done = total)

 private:
  void draw(uint64_t done);
  std::string label_;
  uint64_t total_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace qsft
