#include "engine/train/metrics.h"

#include <simdjson.h>

#include <fstream>

#include "engine/base/error.h"
#include "engine/base/json_writer.h"

namespace qsft {

namespace fs = std::filesystem;

MetricsLog::MetricsLog(const fs::path& output_dir, int64_t keep_until_step)
    : path_(output_dir / "metrics.jsonl"), svg_path_(output_dir / "loss_curve.svg"), tensorboard_(output_dir) {
  std::string kept;
  if (keep_until_step >= 0 && fs::exists(path_)) {
    std::ifstream in(path_);
    simdjson::dom::parser parser;
    for (std::string line; std::getline(in, line);) {
      simdjson::dom::element e;
      int64_t step;
      if (parser.parse(line).get(e) || e["step"].get(step)) break;  // a torn last line from a kill: dropped
      if (step > keep_until_step) break;
      double v;
      if (!e["loss"].get(v)) train_.push_back({step, v});
      if (!e["eval_loss"].get(v)) eval_.push_back({step, v});
      kept += line + "\n";
    }
  }
  write_file_atomic(path_, kept);
  redraw();
}

void MetricsLog::log(int64_t step, const std::vector<std::pair<std::string, double>>& fields) {
  Json line = Json::object();
  line.set("step", step);
  for (const auto& [name, value] : fields) {
    const bool integral = name == "num_tokens";
    line.set(name, integral ? Json(int64_t(value)) : Json(value));
    const bool eval = name.rfind("eval_", 0) == 0;
    tensorboard_.scalar(eval ? "eval/" + name.substr(5) : "train/" + name, float(value), step);
    if (name == "loss") train_.push_back({step, value});
    if (name == "eval_loss") eval_.push_back({step, value});
  }
  std::ofstream out(path_, std::ios::app);
  out << line.dump() << "\n";
  out.flush();
  if (!out) throw input_error(path_.string(), "cannot append (disk full?)");
  redraw();
}

void MetricsLog::redraw() const { write_loss_curve_svg(svg_path_, train_, eval_); }

}  // namespace qsft
