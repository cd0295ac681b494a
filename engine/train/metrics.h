// What a run records, at every log: a line of output_dir/metrics.jsonl (train: step, epoch, loss, grad_norm,
// learning_rate, num_tokens, tokens_per_second; eval: step, epoch, eval_loss, eval_accuracy), the same scalars in
// a TensorBoard event file (tags train/<name>, eval/<name>), and the loss curve SVG, redrawn. On resume, lines after
// the checkpoint's step are dropped, so the file equals the one an uninterrupted run writes (timing fields aside).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/train/tensorboard.h"

namespace qsft {

struct CurvePoint {
  int64_t step;
  double value;
};

class MetricsLog {
 public:
  // Keeps the lines of an existing metrics.jsonl whose step <= keep_until_step (-1: start afresh).
  MetricsLog(const std::filesystem::path& output_dir, int64_t keep_until_step);
  // One line: {"step": step, name: value, ...} in the given order. "loss" and "eval_loss" feed the curve.
  void log(int64_t step, const std::vector<std::pair<std::string, double>>& fields);
  const std::vector<CurvePoint>& train_curve() const { return train_; }
  const std::vector<CurvePoint>& eval_curve() const { return eval_; }

 private:
  void redraw() const;
  std::filesystem::path path_, svg_path_;
  TensorBoardWriter tensorboard_;
  std::vector<CurvePoint> train_, eval_;
};

// An SVG line chart of the train and eval losses against the optimizer step (written atomically).
void write_loss_curve_svg(const std::filesystem::path& path, const std::vector<CurvePoint>& train,
                          const std::vector<CurvePoint>& eval);

}  // namespace qsft
