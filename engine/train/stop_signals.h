// SIGINT and SIGTERM while `qwen-sft train` runs: the first one asks the loop to stop after the step in progress
// (the trainer then writes a checkpoint of it and the command exits 128 + the signal number: 130, 143); the handler
// resets itself (SA_RESETHAND), so a second signal ends the process at once, as if there were no handler. A signal
// during data preparation is seen before the first step.
#pragma once

#include <signal.h>

namespace qsft {

class StopSignals {
 public:
  StopSignals();   // installs the handlers
  ~StopSignals();  // puts the previous ones back
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  int received() const;  // 0, SIGINT or SIGTERM
  static const char* name(int signal);

 private:
  struct sigaction old_int_ {
  }, old_term_{};
};

}  // namespace qsft
